"""Check the caller's values against a bundle's declared placeholders, per placeholder type."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connectors.letters.errors import InvalidValue, MissingValue, UnknownValue
from connectors.letters.labels import format_date
from connectors.letters.limits import Limits
from connectors.letters.syntax import FORBIDDEN
from schemas.events import Placeholder
from schemas.fields import Email, Phone

_CASE_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_phone: TypeAdapter[str] = TypeAdapter(Phone)
_email: TypeAdapter[str] = TypeAdapter(Email)

Value = str | date


@dataclass(frozen=True, slots=True)
class Checked:
    """A value that passed its placeholder's type; `text(lang)` is what the letter shows."""

    kind: str
    value: str | date

    def text(self, lang: str) -> str:
        if isinstance(self.value, date):
            return format_date(self.value, lang)
        return self.value


def _first_message(e: ValidationError) -> str:
    # pydantic's `msg` never contains the input; our own validators word it for people.
    return e.errors(include_input=False)[0]["msg"]


def _check_one(p: Placeholder, raw: Any, limits: Limits) -> Checked:
    where = f"value for (({p.name}))"
    if p.type == "date":
        if isinstance(raw, datetime):
            raise InvalidValue(f"{where} must be a date, not a date-time", field=p.name)
        if isinstance(raw, date):
            return Checked("date", raw)
        if isinstance(raw, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
            try:
                return Checked("date", date.fromisoformat(raw))
            except ValueError:
                pass
        raise InvalidValue(f"{where} must be a date (YYYY-MM-DD)", field=p.name)
    if not isinstance(raw, str):
        raise InvalidValue(f"{where} must be text", field=p.name)
    value = raw.strip()
    if not value:
        raise InvalidValue(f"{where} is blank", field=p.name)
    if len(value) > limits.value_chars:
        raise InvalidValue(f"{where} is longer than {limits.value_chars} characters", field=p.name)
    if "\n" in value or "\t" in value or FORBIDDEN.search(value):
        raise InvalidValue(f"{where} contains a line break, control or formatting character", field=p.name)
    if p.type == "case_number" and not _CASE_NUMBER.fullmatch(value):
        raise InvalidValue(f"{where} must be letters, digits and . _ : / - (at most 64)", field=p.name)
    try:
        if p.type == "phone":
            value = _phone.validate_python(value)
        elif p.type == "email":
            value = _email.validate_python(value)
    except ValidationError as e:
        raise InvalidValue(f"{where}: {_first_message(e)}", field=p.name) from None
    return Checked(p.type, value)


def check_values(
    placeholders: Sequence[Placeholder], values: Mapping[str, Value | None], limits: Limits
) -> dict[str, Checked]:
    """Every key must be declared, every required placeholder given; `None` means not given."""
    declared = {p.name: p for p in placeholders}
    for name in values:
        if name not in declared:
            shown = name if isinstance(name, str) and re.fullmatch(r"[a-z0-9_]{1,64}", name) else "?"
            raise UnknownValue(f"a value was given for undeclared placeholder (({shown}))", field=shown)
    checked: dict[str, Checked] = {}
    for p in placeholders:
        raw = values.get(p.name)
        if raw is None or (isinstance(raw, str) and not raw.strip() and not p.required):
            if p.required:
                raise MissingValue(f"required placeholder (({p.name})) has no value", field=p.name)
            continue
        checked[p.name] = _check_one(p, raw, limits)
    return checked


def sample_values(placeholders: Sequence[Placeholder]) -> dict[str, Value]:
    """The manifest's made-up sample values, for a preview (dates as dates)."""
    return {
        p.name: date.fromisoformat(p.sample) if p.type == "date" else p.sample
        for p in placeholders
        if p.sample is not None
    }


def check_samples(placeholders: Sequence[Placeholder], limits: Limits) -> None:
    """Every sample value must be a valid value of its placeholder's type."""
    for p in placeholders:
        if p.sample is not None:
            try:
                _check_one(p, p.sample, limits)
            except InvalidValue as e:
                raise InvalidValue(f"sample {e.message}", field=p.name) from None


def check_lines(lines: Sequence[str | None], what: str, limits: Limits) -> None:
    """The caller's own lines (letterhead, recipient address) obey the same character rules."""
    for line in lines:
        if line is None:
            continue
        if len(line) > limits.value_chars or "\n" in line or FORBIDDEN.search(line):
            raise InvalidValue(
                f"{what}: a line is too long or contains a control or formatting character",
                field=what,
            )


_POSTCODE_LIKE = re.compile(r"^\s*[1-9][0-9]{3}\s*[A-Za-z]{2}(?![A-Za-z])")
_POSTCODE = re.compile(r"^[1-9][0-9]{3} [A-Z]{2}  ?\S")
_COUNTRY = re.compile(r"^[^\W\d_][^\W\d_ '-]*(?:[ '-][^\W\d_]+)*$")
ADDRESS_LINES = 6  # what the window of an envelope shows (DIN 5008 address zone)


def check_address(lines: Sequence[str]) -> None:
    """A recipient's address as the post reads it: two to six lines; a Dutch address ends with
    `1234 AB  PLACE`, a foreign one with the country's name in capitals."""
    if not lines:
        return
    if not 2 <= len(lines) <= ADDRESS_LINES:
        raise InvalidValue(
            f"recipient: an address has 2 to {ADDRESS_LINES} lines (the envelope window), not {len(lines)}",
            field="recipient",
        )
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            raise InvalidValue(f"recipient: line {n} is blank", field="recipient")
        if _POSTCODE_LIKE.match(line) and not _POSTCODE.match(line):
            raise InvalidValue(
                f"recipient: line {n} has a postcode that does not read '1234 AB  PLACE' "
                "(four digits, a space, two capitals, then the place)",
                field="recipient",
            )
    last = lines[-1]
    if not _POSTCODE.match(last) and not (_COUNTRY.match(last) and last == last.upper()):
        raise InvalidValue(
            "recipient: the last line must be '1234 AB  PLACE' or, abroad, the country in capitals",
            field="recipient",
        )


MAX_LOGO_BYTES = 256 * 1024
_LOGO_KINDS = {".png": ("image/png", b"\x89PNG\r\n\x1a\n"), ".svg": ("image/svg+xml", b"")}


def read_logo(path: Path) -> tuple[str, bytes]:
    """A letterhead logo: a PNG or SVG file of at most 256 KiB; (media type, bytes)."""
    kind = _LOGO_KINDS.get(path.suffix.lower())
    if kind is None:
        raise InvalidValue("letterhead: the logo must be a .png or .svg file", field="letterhead")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidValue(f"letterhead: cannot read the logo ({exc.strerror})", field="letterhead") from None
    if len(data) > MAX_LOGO_BYTES:
        raise InvalidValue(f"letterhead: the logo is larger than {MAX_LOGO_BYTES} bytes", field="letterhead")
    media, magic = kind
    if not data.startswith(magic) or (media == "image/svg+xml" and b"<svg" not in data[:4096]):
        raise InvalidValue(
            f"letterhead: the logo is not a {path.suffix.lower()[1:].upper()} file", field="letterhead"
        )
    return media, data
