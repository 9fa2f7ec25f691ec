from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas import redaction
from schemas.envelope import describe_validation_error, error_field
from schemas.errors import SchemaInvalid, UnknownType
from schemas.fields import (
    BSN,
    BirthDate,
    BrinCode,
    CbsCode,
    Email,
    IsoDate,
    Language,
    LongText,
    PastDateTime,
    Phone,
    Postcode,
    SemVer,
    ShortText,
    Slug,
    Timestamp,
    passes_eleven_test,
)
from schemas.validation import validate_payload

WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


class Form(BaseModel):
    """One optional field per type, so each test sets only the field it is about."""

    model_config = ConfigDict(extra="forbid")

    bsn: BSN | None = None
    postcode: Postcode | None = None
    brin: BrinCode | None = None
    cbs: CbsCode | None = None
    language: Language | None = None
    birth_date: BirthDate | None = None
    day: IsoDate | None = None
    at: Timestamp | None = None
    happened: PastDateTime | None = None
    phone: Phone | None = None
    email: Email | None = None
    short: ShortText | None = None
    long: LongText | None = None
    slug: Slug | None = None
    version: SemVer | None = None


def rejects(field: str, value: object) -> str:
    """Validate one field; assert it fails there and the message names it."""
    with pytest.raises(ValidationError) as info:
        Form.model_validate({field: value})
    assert error_field(info.value) == field
    message = describe_validation_error(info.value)
    assert message.startswith(f"{field}: ")
    return message


def accepts(field: str, value: object) -> object:
    return getattr(Form.model_validate({field: value}), field)


# --- BSN ----------------------------------------------------------------------------------


@st.composite
def valid_bsns(draw: st.DrawFn) -> str:
    head = draw(st.lists(st.integers(0, 9), min_size=8, max_size=8))
    weighted = sum(d * w for d, w in zip(head, WEIGHTS[:8], strict=True))
    check = weighted % 11
    assume(check != 10)  # no check digit makes this prefix valid
    assume(weighted != check)  # a total of 0 is not valid either (e.g. 000000000)
    return "".join(map(str, head)) + str(check)


@given(valid_bsns())
def test_valid_bsns_pass_the_eleven_test(bsn: str) -> None:
    assert passes_eleven_test(bsn)
    assert accepts("bsn", bsn) == bsn


@given(valid_bsns(), st.integers(0, 8), st.integers(1, 9))
def test_changing_one_digit_breaks_the_eleven_test(bsn: str, pos: int, delta: int) -> None:
    # |delta * weight| < 11 * 11 and 11 is prime, so a single-digit change always shows.
    digits = list(bsn)
    digits[pos] = str((int(digits[pos]) + delta) % 10)
    corrupt = "".join(digits)
    assert not passes_eleven_test(corrupt)
    assert "11-test" in rejects("bsn", corrupt)


@pytest.mark.parametrize("value", ["12345678", "1234567890", "11122233a", "111 222 333", "٠١٢٣٤٥٦٧٨"])
def test_bsn_must_be_nine_ascii_digits(value: str) -> None:
    assert "9 digits" in rejects("bsn", value)


def test_bsn_is_a_string_not_a_number() -> None:
    # An int would lose leading zeros.
    rejects("bsn", 111222333)


def test_all_zeros_is_not_a_bsn() -> None:
    assert not passes_eleven_test("000000000")


def test_redaction_keeps_the_eleven_test() -> None:
    assert redaction.passes_eleven_test is passes_eleven_test


# --- postcode, BRIN, CBS, language --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normalised"),
    [("2511 AB", "2511AB"), ("2511AB", "2511AB"), ("3011aa", "3011AA"), ("9999 zz", "9999ZZ")],
)
def test_postcode_is_normalised(value: str, normalised: str) -> None:
    assert accepts("postcode", value) == normalised


@pytest.mark.parametrize(
    "value", ["0511AB", "251AB", "25111AB", "2511  AB", "2511-AB", "2511A", "AB2511", " 2511AB"]
)
def test_postcode_shape(value: str) -> None:
    assert "postcode" in rejects("postcode", value)


@pytest.mark.parametrize("value", ["1234SA", "1234 sd", "1234SS"])
def test_postcode_letters_sa_sd_ss_are_not_used(value: str) -> None:
    assert "SA, SD and SS" in rejects("postcode", value)


@pytest.mark.parametrize(
    ("value", "normalised"),
    [("12AB", "12AB"), ("12ab", "12AB"), ("0123", "0123"), ("12AB01", "12AB01")],
)
def test_brin(value: str, normalised: str) -> None:
    assert accepts("brin", value) == normalised


@pytest.mark.parametrize("value", ["1AB2", "AB12", "12AB1", "12ABC1", "12AB012", "12A", "12-AB"])
def test_brin_rejected(value: str) -> None:
    assert "BRIN" in rejects("brin", value)


@pytest.mark.parametrize("value", ["GM0518", "GM0599", "GM0307", "GM0957"])
def test_cbs_code(value: str) -> None:
    assert accepts("cbs", value) == value


@pytest.mark.parametrize("value", ["gm0518", "GM518", "GM05180", "0518", "GM 0518"])
def test_cbs_code_rejected(value: str) -> None:
    assert "GM and 4 digits" in rejects("cbs", value)


@pytest.mark.parametrize("value", ["nl", "en", "pl", "tr", "ar", "bg"])
def test_languages(value: str) -> None:
    assert accepts("language", value) == value


@pytest.mark.parametrize("value", ["de", "NL", "nl-NL", ""])
def test_language_rejected_names_the_choices(value: str) -> None:
    assert "'nl'" in rejects("language", value)


# --- dates --------------------------------------------------------------------------------


def test_birth_date_not_in_the_future() -> None:
    tomorrow_plus = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    assert "future" in rejects("birth_date", tomorrow_plus)
    assert "1900" in rejects("birth_date", "1899-12-31")
    assert str(accepts("birth_date", "2014-05-17")) == "2014-05-17"


@pytest.mark.parametrize("value", [1_700_000_000, "2014-05-17T00:00:00", "17-05-2014", "2014-5-7"])
def test_dates_are_iso_strings(value: object) -> None:
    rejects("day", value)


def test_timestamps_need_a_zone() -> None:
    rejects("at", "2025-01-08T10:00:00")
    rejects("at", 1_700_000_000)
    assert accepts("at", "2025-01-08T10:00:00+01:00") is not None


def test_past_datetime_allows_clock_skew_not_more() -> None:
    soon = datetime.now(UTC) + timedelta(minutes=1)
    later = datetime.now(UTC) + timedelta(hours=2)
    assert accepts("happened", soon.isoformat()) is not None
    assert "future" in rejects("happened", later.isoformat())


# --- contact details ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "070 123 4567",
        "070-1234567",
        "06 12345678",
        "0612345678",
        "+31 6 12345678",
        "+31 70 123 4567",
        "0031 70 123 4567",
        "+48 600 000 000",
        "14 070",
        "14010",
        "0800-1234",
        "0900 123 45 67",
    ],
)
def test_phone_accepted(value: str) -> None:
    assert accepts("phone", value) == value


@pytest.mark.parametrize(
    "value",
    [
        "12345",
        "070 123 456",  # 9 digits
        "070 123 45678",  # 11 digits
        "+31 70 123 45",  # Dutch, too short
        "+0 123 456 789",
        "+1234567890123456",  # over E.164's 15 digits
        "call 070 1234567",
        "070 1234567 ",
        "0" * 40,
    ],
)
def test_phone_rejected(value: str) -> None:
    assert "phone" in rejects("phone", value)


@pytest.mark.parametrize(
    "value", ["leerplicht@denhaag.example", "a.b+c@mail.example.nl", "X_Y@sub-domain.example"]
)
def test_email_accepted(value: str) -> None:
    assert accepts("email", value) == value


@pytest.mark.parametrize(
    "value",
    [
        "no-at-sign.example",
        "two@@example.nl",
        "a@b",
        "a @example.nl",
        "a@example..nl",
        ".a@example.nl",
        "a@-example.nl",
        ("x" * 65) + "@example.nl",
        "a@" + ("x" * 250) + ".nl",
    ],
)
def test_email_rejected(value: str) -> None:
    assert "e-mail" in rejects("email", value)


# --- text and identifiers -----------------------------------------------------------------


def test_short_text_bounds() -> None:
    assert accepts("short", "Sanne") == "Sanne"
    assert "200" in rejects("short", "x" * 201)
    assert "blank" in rejects("short", "   ")
    assert "single line" in rejects("short", "two\nlines")
    rejects("short", "")


def test_long_text_bounds() -> None:
    assert accepts("long", "line one\nline two\ttab") == "line one\nline two\ttab"
    assert "5000" in rejects("long", "x" * 5001)
    assert "control" in rejects("long", "bell\x07")


@pytest.mark.parametrize("value", ["1.0.0", "2.10.3-rc.1", "1.0.0+build.5"])
def test_semver(value: str) -> None:
    assert accepts("version", value) == value


@pytest.mark.parametrize("value", ["1.0", "01.0.0", "v1.0.0", "1.0.0-"])
def test_semver_rejected(value: str) -> None:
    assert "semantic version" in rejects("version", value)


def test_slug() -> None:
    assert accepts("slug", "we-zijn-je-kwijt") == "we-zijn-je-kwijt"
    for bad in ["We-Zijn", "a--b", "-a", "a b", "x" * 65]:
        rejects("slug", bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("bsn", "123456789"),
        ("bsn", "98765432x"),
        ("postcode", "0987 XY"),
        ("postcode", "9876 SS"),
        ("brin", "98XY7"),
        ("phone", "06 98765"),
        ("email", "j.jansen@@mail.example"),
        ("birth_date", "2999-01-01"),
        ("short", "Jansen\nvan Dam"),
    ],
)
def test_messages_never_echo_the_value(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        Form.model_validate({field: value})
    message = describe_validation_error(info.value)
    assert value not in message
    assert value.split()[0] not in message


# --- validate_payload ---------------------------------------------------------------------


def test_validate_payload_unknown_type() -> None:
    with pytest.raises(UnknownType) as info:
        validate_payload("nl.leerplicht.transfer.teleported", {})
    assert info.value.field == "type"
    assert info.value.reason == "unknown_type"


def test_validate_payload_names_field_and_reason_without_value() -> None:
    with pytest.raises(SchemaInvalid) as info:
        validate_payload(
            "nl.leerplicht.notice.pupil_found",
            {"notice_id": "n-1", "contact": {"name": "A. Jansen", "phone": "06 1234"}},
        )
    exc = info.value
    assert exc.field == "contact.phone"
    assert exc.message.startswith("notice.pupil_found payload: contact.phone: ")
    assert "06 1234" not in exc.message
    assert exc.reason == "schema_invalid"
    # The pydantic error (whose text echoes the input) is not chained.
    assert exc.__cause__ is None and exc.__suppress_context__


def test_validate_payload_message_fits_hub_rejected() -> None:
    with pytest.raises(SchemaInvalid) as info:
        validate_payload("nl.leerplicht.ping", {"x" * 1000: 1, "y" * 1000: 2})
    assert len(info.value.message) <= 480
    assert info.value.field is not None and len(info.value.field) <= 100


def test_validate_payload_whole_input_wrong() -> None:
    with pytest.raises(SchemaInvalid) as info:
        validate_payload("nl.leerplicht.ping", None)
    assert info.value.field == "data"
    assert info.value.message.startswith("ping payload: data: ")
