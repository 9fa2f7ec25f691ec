"""Field types of the payload models: reusable `Annotated` types for Dutch identifiers, dates,
contact details and bounded text (`schemas.events` builds its models from them; connectors use
them for their own inputs). `schemas.validation.validate_payload` checks a whole payload.

Error messages name what is wrong, never the offending value: a rejected BSN, postcode or
phone number is personal data, and messages travel to logs and to `hub.rejected`. Each type
also carries its JSON Schema, so the exported contract says what Python enforces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "BSN",
    "RTL_LANGUAGES",
    "BirthDate",
    "BlindIndex",
    "BodyText",
    "BrinCode",
    "CbsCode",
    "Direction",
    "Email",
    "Identifier",
    "IsoDate",
    "KeyId",
    "Language",
    "LongText",
    "NamePrefix",
    "Note",
    "PastDate",
    "PastDateTime",
    "Phone",
    "Postcode",
    "SemVer",
    "ShortText",
    "Slug",
    "Timestamp",
    "passes_eleven_test",
]

# Clock skew we tolerate for "not in the future" timestamps written on another machine.
CLOCK_SKEW = timedelta(minutes=10)
EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _matcher(kind: str, regex: str, message: str, max_length: int, *, flags: int = 0) -> Callable[[str], str]:
    compiled = re.compile(regex, flags)

    def check(value: str) -> str:
        if len(value) > max_length:
            raise _fail(kind, f"{message} (at most {max_length} characters)")
        if not compiled.fullmatch(value):
            raise _fail(kind, message)
        return value

    return check


# --- BSN ----------------------------------------------------------------------------------

_ELEVEN_TEST_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


def passes_eleven_test(digits: str) -> bool:
    """The BSN 11-test: sum(d_i * w_i) with weights 9..2 and -1 is divisible by 11, not 0."""
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits, _ELEVEN_TEST_WEIGHTS, strict=True))
    return total % 11 == 0 and total != 0


def _check_bsn(value: str) -> str:
    if len(value) != 9 or not value.isascii() or not value.isdigit():
        raise _fail("bsn", "a BSN must be exactly 9 digits")
    if not passes_eleven_test(value):
        raise _fail("bsn", "not a valid BSN (fails the 11-test)")
    return value


BSN = Annotated[
    str,
    AfterValidator(_check_bsn),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{9}$",
            "minLength": 9,
            "maxLength": 9,
            "description": "Burgerservicenummer: 9 digits passing the 11-test.",
        }
    ),
]

# --- Postcode -----------------------------------------------------------------------------

_POSTCODE_RE = re.compile(r"([1-9][0-9]{3}) ?([A-Za-z]{2})")


def _check_postcode(value: str) -> str:
    if len(value) > 7:
        raise _fail("postcode", "a postcode is 4 digits and 2 letters, e.g. 1234 AB")
    m = _POSTCODE_RE.fullmatch(value)
    if not m:
        raise _fail("postcode", "a postcode is 4 digits (not starting with 0) and 2 letters, e.g. 1234 AB")
    letters = m[2].upper()
    if letters in {"SA", "SD", "SS"}:
        raise _fail("postcode", "postcode letters SA, SD and SS are not used")
    return m[1] + letters


Postcode = Annotated[
    str,
    AfterValidator(_check_postcode),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[1-9][0-9]{3} ?(?![Ss][AaDdSs])[A-Za-z]{2}$",
            "maxLength": 7,
            "description": "Dutch postcode; `1234 AB` and `1234ab` are accepted and normalised to `1234AB`.",
            "examples": ["2511AB"],
        }
    ),
]

# --- BRIN, CBS ----------------------------------------------------------------------------

_BRIN_RE = re.compile(r"[0-9]{2}[A-Z0-9]{2}(?:[0-9]{2})?")


def _check_brin(value: str) -> str:
    upper = value.upper()
    if len(value) > 6 or not _BRIN_RE.fullmatch(upper):
        raise _fail(
            "brin",
            "a BRIN code is 2 digits and 2 letters or digits (e.g. 12AB), "
            "optionally followed by a 2-digit vestiging number",
        )
    return upper


BrinCode = Annotated[
    str,
    AfterValidator(_check_brin),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]{2}[A-Za-z0-9]{2}([0-9]{2})?$",
            "minLength": 4,
            "maxLength": 6,
            "description": "BRIN school code (e.g. `12AB`), optionally with a 2-digit "
            "vestiging suffix (`12AB00`); normalised to upper case.",
            "examples": ["12AB", "12AB01"],
        }
    ),
]

CbsCode = Annotated[
    str,
    AfterValidator(_matcher("cbs_code", r"GM[0-9]{4}", "a CBS municipality code is GM and 4 digits", 6)),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^GM[0-9]{4}$",
            "description": "CBS municipality code, e.g. GM0518 (Den Haag).",
            "examples": ["GM0518"],
        }
    ),
]

# --- dates and times ----------------------------------------------------------------------


def _iso_date_only(value: object) -> object:
    # Lax pydantic would take a Unix timestamp or a datetime string for a date.
    if isinstance(value, datetime):
        raise _fail("iso_date", "must be a date (YYYY-MM-DD), not a date-time")
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise _fail("iso_date", "must be an ISO date, YYYY-MM-DD")
    return value


def _iso_datetime_only(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or len(value) > 40:
        raise _fail("iso_datetime", "must be an RFC 3339 date-time with a timezone")
    return value


def _not_future_date(value: date) -> date:
    if value > datetime.now(UTC).date() + timedelta(days=1):  # +1: the sender's day may be ahead
        raise _fail("date_in_future", "must not be in the future")
    return value


def _plausible_birth_date(value: date) -> date:
    if value < EARLIEST_BIRTH_DATE:
        raise _fail("birth_date", "a birth date must be after 1900-01-01")
    return _not_future_date(value)


def _not_future_datetime(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise _fail("datetime_in_future", "must not be in the future")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]
PastDate = Annotated[date, BeforeValidator(_iso_date_only), AfterValidator(_not_future_date)]
BirthDate = Annotated[date, BeforeValidator(_iso_date_only), AfterValidator(_plausible_birth_date)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_datetime_only)]
PastDateTime = Annotated[
    AwareDatetime, BeforeValidator(_iso_datetime_only), AfterValidator(_not_future_datetime)
]

# --- languages ----------------------------------------------------------------------------

Language = Literal["nl", "en", "pl", "tr", "ar", "bg"]
Direction = Literal["ltr", "rtl"]
RTL_LANGUAGES: frozenset[str] = frozenset({"ar"})

# --- contact details ----------------------------------------------------------------------

_PHONE_CHARS = re.compile(r"\+?[0-9 ()./-]+")
_PHONE_SEPARATORS = re.compile(r"[ ()./-]")


def _check_phone(value: str) -> str:
    message = (
        "a phone number is a Dutch number (e.g. 070 123 4567, 14 070) "
        "or an international one starting with + or 00"
    )
    if len(value) > 32:
        raise _fail("phone", "a phone number must be at most 32 characters")
    if not _PHONE_CHARS.fullmatch(value.strip()) or value != value.strip():
        raise _fail("phone", message)
    digits = _PHONE_SEPARATORS.sub("", value)
    if digits.startswith("+"):
        international = digits[1:]
    elif digits.startswith("00"):
        international = digits[2:]
    else:
        international = None
    if international is not None:
        # E.164: country code (no leading 0), at most 15 digits in all.
        if not re.fullmatch(r"[1-9][0-9]{6,14}", international):
            raise _fail("phone", message)
        if international.startswith("31") and len(international) != 11:
            raise _fail("phone", "a Dutch number has 9 digits after +31")
        return value
    ok = (
        re.fullmatch(r"0[1-9][0-9]{8}", digits)  # geographic and mobile: 10 digits
        or re.fullmatch(r"0(?:800|90[0-9])[0-9]{4,7}", digits)  # service numbers
        or re.fullmatch(r"14[0-9]{3,4}", digits)  # municipal 14 + area code, e.g. 14 070
    )
    if not ok:
        raise _fail("phone", message)
    return value


Phone = Annotated[
    str,
    AfterValidator(_check_phone),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\+?[0-9][0-9 ()./-]*$",
            "minLength": 5,
            "maxLength": 32,
            "description": "Phone number as written: Dutch national (10 digits), "
            "0800/090x service numbers, municipal 14xxx numbers, or international "
            "(+ or 00, E.164 length).",
            "examples": ["14 070", "+31 70 123 4567"],
        }
    ),
]

# Deliberately simple (no quoted local parts, no IP literals): enough to catch typos
# without a dependency; deliverability is checked by sending, not by a regex.
_EMAIL_RE = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)


def _check_email(value: str) -> str:
    if len(value) > 254:
        raise _fail("email", "an e-mail address must be at most 254 characters")
    local, _, _domain = value.partition("@")
    if len(local) > 64 or not _EMAIL_RE.fullmatch(value):
        raise _fail("email", "not a valid e-mail address (expected name@domain.tld)")
    return value


Email = Annotated[
    str,
    AfterValidator(_check_email),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "minLength": 6,
            "maxLength": 254,
            "description": "E-mail address, simple syntax: local@domain.tld.",
            "examples": ["leerplicht@denhaag.example"],
        }
    ),
]

# --- bounded text -------------------------------------------------------------------------

_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_MULTI_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _single_line(value: str) -> str:
    if _CONTROL_SINGLE_LINE.search(value):
        raise _fail("control_characters", "must be a single line without control characters")
    if not value.strip():
        raise _fail("blank", "must not be blank")
    return value


def _multi_line(value: str) -> str:
    if _CONTROL_MULTI_LINE.search(value):
        raise _fail("control_characters", "must not contain control characters")
    return value


def _text(min_length: int, max_length: int, multi_line: bool) -> Any:
    pattern = r"^[^\u0000-\u001f\u007f]*$" if not multi_line else None
    extra: dict[str, Any] = {"pattern": pattern} if pattern else {}
    return Field(min_length=min_length, max_length=max_length, json_schema_extra=extra or None)


ShortText = Annotated[str, _text(1, 200, False), AfterValidator(_single_line)]
"""One line, 1..200 characters: names, titles, subjects."""

NamePrefix = Annotated[str, _text(1, 20, False), AfterValidator(_single_line)]
"""A family-name prefix (tussenvoegsel), e.g. `van der`."""

Note = Annotated[str, _text(1, 1000, True), AfterValidator(_multi_line)]
"""Up to 1000 characters, line breaks allowed: a note on one timeline entry."""

LongText = Annotated[str, _text(0, 5000, True), AfterValidator(_multi_line)]
"""Up to 5000 characters, line breaks allowed: free notes, summaries."""

BodyText = Annotated[str, _text(1, 20_000, True), AfterValidator(_multi_line)]
"""1..20000 characters, line breaks allowed: the body of a letter template."""

# --- identifiers --------------------------------------------------------------------------

Identifier = Annotated[
    str,
    AfterValidator(
        _matcher(
            "identifier",
            r"[A-Za-z0-9][A-Za-z0-9._:-]*",
            "an identifier uses letters, digits and . _ : - (starting with a letter or digit)",
            64,
        )
    ),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
            "minLength": 1,
            "maxLength": 64,
            "description": "Opaque identifier (a UUID is fine). It may appear as the "
            "envelope's `subject`, so it must never encode personal data.",
        }
    ),
]

Slug = Annotated[
    str,
    AfterValidator(
        _matcher(
            "slug",
            r"[a-z0-9]+(?:-[a-z0-9]+)*",
            "must be lower-case letters and digits separated by single hyphens",
            64,
        )
    ),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[a-z0-9]+(-[a-z0-9]+)*$",
            "minLength": 1,
            "maxLength": 64,
            "examples": ["we-zijn-je-kwijt"],
        }
    ),
]

# semver.org's regex, without build metadata bounds changed.
_SEMVER = (
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)

SemVer = Annotated[
    str,
    AfterValidator(_matcher("semver", _SEMVER, "must be a semantic version, e.g. 1.2.0", 64)),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": f"^{_SEMVER}$",
            "maxLength": 64,
            "description": "Semantic version (semver.org 2.0.0).",
            "examples": ["1.0.0"],
        }
    ),
]

BlindIndex = Annotated[
    str,
    AfterValidator(
        _matcher(
            "blind_index",
            r"[0-9a-f]{64}",
            "a blind index is 64 lower-case hex characters (HMAC-SHA256)",
            64,
        )
    ),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9a-f]{64}$",
            "minLength": 64,
            "maxLength": 64,
            "description": "HMAC-SHA256 of the normalised BSN under the group key, lower-case hex.",
        }
    ),
]

KeyId = Annotated[
    str,
    AfterValidator(
        _matcher(
            "key_id",
            r"[A-Za-z0-9_-]+",
            "a key id uses base64url characters (letters, digits, - and _)",
            128,
        )
    ),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[A-Za-z0-9_-]+$",
            "minLength": 1,
            "maxLength": 128,
            "description": "Key id (`kid`), e.g. an RFC 7638 JWK thumbprint in base64url.",
        }
    ),
]
