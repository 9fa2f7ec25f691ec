"""What counts as personal data in a log record, and the structlog processor that removes it.

Two nets: values under a personal-data key are replaced wherever they sit (nested dicts and
lists included), and any free-text value that contains a number shaped like a BSN that passes
the 11-test is masked, so an f-string that slipped through does not leak one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from schemas.fields import passes_eleven_test

__all__ = [
    "PERSONAL_FIELDS",
    "REDACTED",
    "bsn_in_attributes",
    "passes_eleven_test",
    "redact_personal_data",
]

REDACTED = "[redacted]"

PERSONAL_FIELDS: frozenset[str] = frozenset(
    {
        "bsn",
        "name",
        "names",
        "first_name",
        "first_names",
        "given_name",
        "family_name",
        "last_name",
        "surname",
        "prefix",
        "initials",
        "pupil",
        "pupil_name",
        "guardian",
        "guardians",
        "birth_date",
        "date_of_birth",
        "birthdate",
        "address",
        "street",
        "house_number",
        "postcode",
        "postal_code",
        "city",
        "phone",
        "phone_number",
        "telephone",
        "email",
        "e_mail",
        "dossier",
        "plaintext",
        "private_key",
        "passphrase",
        "password",
        "token",
        "secret",
    }
)

_BSN_LIKE = re.compile(r"(?<!\d)\d{9}(?!\d)")


_TOKEN_SEPARATOR = re.compile(r"[^A-Za-z0-9]+")
_HEX_WITH_LETTER = re.compile(r"^(?=.*[a-fA-F])[0-9a-fA-F]+$")


def _has_bsn(value: str) -> bool:
    """Whether `value` carries a BSN: a run of exactly nine digits that passes the 11-test,
    in a token (split on everything but letters and digits) that is not a hexadecimal string.
    Random identifiers (UUIDs, trace ids) are hex tokens and may hold nine digits in a row by
    chance; refusing one in every few hundred of them would break delivery, not protect it."""
    for token in _TOKEN_SEPARATOR.split(value):
        if len(token) < 9 or _HEX_WITH_LETTER.match(token):
            continue
        if any(passes_eleven_test(m.group(0)) for m in _BSN_LIKE.finditer(token)):
            return True
    return False


def bsn_in_attributes(attributes: Mapping[str, str | list[str] | None]) -> str | None:
    """The name of the first attribute that carries a BSN (see `_has_bsn`), or None.
    The hub stores envelope attributes in the clear, so it refuses an event whose attributes
    hold one (a safety net against mistakes, not against a sender determined to leak)."""
    for name, value in attributes.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and _has_bsn(v) for v in values):
            return name
    return None


def bsn_in_data(value: Any) -> bool:
    """Whether readable event data (a JSON value: the plain `data` of an unsealed event) holds
    a BSN in any of its strings (see `_has_bsn`). The same safety net as `bsn_in_attributes`,
    for what the hub keeps of a body; sealed data is one opaque JWE string and never holds a
    readable BSN, but it is not meant to be given here."""
    if isinstance(value, str):
        return _has_bsn(value)
    if isinstance(value, Mapping):
        return any(bsn_in_data(k) or bsn_in_data(v) for k, v in value.items())
    if isinstance(value, list):
        return any(bsn_in_data(v) for v in value)
    return False


def _mask_text(text: str) -> str:
    return _BSN_LIKE.sub(lambda m: REDACTED if passes_eleven_test(m.group(0)) else m.group(0), text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and k.lower() in PERSONAL_FIELDS else _scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    return value


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: drop personal-data fields and mask BSN-shaped numbers."""
    for key in list(event_dict):
        if key.lower() in PERSONAL_FIELDS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict
