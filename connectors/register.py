"""The local pupil register: who this municipality knows, kept encrypted in the local store.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

Imported from CSV (UTF-8, header row, `,` or `;`), one pupil per row, columns:

    bsn, given_names, family_name_prefix, family_name, birth_date (YYYY-MM-DD),
    street, house_number, house_letter, house_number_addition, postcode, city, municipality,
    school_brin, school_name, school_level (po|vo|mbo)     (school_* optional, all or none)

Every row is validated with the contract's own types (11-test BSN, postcode, BRIN, ...).
A bad row is reported as (row number, column, why) — never echoing the value — and skipped;
the good rows are imported (re-importing a BSN replaces its record). `shred()` makes every
record unreadable by destroying the at-rest secret they are wrapped under.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, func, insert, select, update

from connectors.at_rest import unwrap_data_key, wrap_data_key
from connectors.keystore import Keystore
from connectors.schema import outbox, pupils
from connectors.store import LocalStore
from schemas.envelope import describe_validation_error, error_field
from schemas.errors import CryptoError
from schemas.fields import (
    BSN,
    BirthDate,
    BrinCode,
    CbsCode,
    NamePrefix,
    Postcode,
    ShortText,
)

__all__ = [
    "COLUMNS",
    "ImportReport",
    "RegisterRow",
    "RowError",
    "enter",
    "get",
    "import_csv",
    "import_data",
    "lookup",
    "search",
    "shred",
]

COLUMNS = (
    "bsn",
    "given_names",
    "family_name_prefix",
    "family_name",
    "birth_date",
    "street",
    "house_number",
    "house_letter",
    "house_number_addition",
    "postcode",
    "city",
    "municipality",
    "school_brin",
    "school_name",
    "school_level",
)
REQUIRED = (
    "bsn",
    "given_names",
    "family_name",
    "birth_date",
    "street",
    "house_number",
    "postcode",
    "city",
    "municipality",
)
MAX_ROWS = 5_000_000


class RegisterRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    bsn: BSN
    given_names: ShortText
    family_name_prefix: NamePrefix | None = None
    family_name: ShortText
    birth_date: BirthDate
    street: ShortText
    house_number: Annotated[int, Field(ge=1, le=99999)]
    house_letter: Annotated[str | None, Field(pattern=r"^[A-Za-z]$")] = None
    house_number_addition: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9]{1,4}$")] = None
    postcode: Postcode
    city: ShortText
    municipality: CbsCode
    school_brin: BrinCode | None = None
    school_name: ShortText | None = None
    school_level: Literal["po", "vo", "mbo"] | None = None

    def fields(self) -> dict[str, Any]:
        address = {
            "street": self.street,
            "house_number": self.house_number,
            "house_letter": self.house_letter,
            "house_number_addition": self.house_number_addition,
            "postcode": self.postcode,
            "city": self.city,
            "municipality": self.municipality,
        }
        school = (
            {"brin": self.school_brin, "name": self.school_name, "level": self.school_level}
            if self.school_brin
            else None
        )
        return {
            "bsn": self.bsn,
            "given_names": self.given_names,
            "family_name_prefix": self.family_name_prefix,
            "family_name": self.family_name,
            "birth_date": self.birth_date.isoformat(),
            "address": address,
            "school": school,
        }


@dataclass(frozen=True)
class RowError:
    row: int  # the line in the file (the header is line 1)
    field: str
    why: str


@dataclass
class ImportReport:
    imported: int = 0
    replaced: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _BrokenCsv(Exception):
    def __init__(self, line: int, why: str) -> None:
        self.line, self.why = line, why


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    if not text.strip():
        return csv.excel
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;")
    except csv.Error:  # e.g. a first line longer than the sample: assume `,`
        return csv.excel


def _rows(text: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    reader = csv.DictReader(io.StringIO(text), dialect=_dialect(text))
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise _BrokenCsv(reader.line_num + 1, str(exc)) from None
    reader.fieldnames = header

    def it() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for record in reader:
                yield reader.line_num, record
        except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
            raise _BrokenCsv(reader.line_num + 1, str(exc)) from None

    return header, it()


def check_header(header: list[str]) -> list[RowError]:
    errors = [RowError(1, name, "required column is missing") for name in REQUIRED if name not in header]
    errors += [RowError(1, name, "unknown column") for name in header if name not in COLUMNS]
    return errors


def parse_row(line: int, record: dict[str, Any]) -> RegisterRow | RowError:
    if None in record:
        return RowError(line, "(row)", "more values than columns")
    values = {k: (v if v is None or v.strip() else None) for k, v in record.items()}
    try:
        row = RegisterRow.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        name = error_field(exc) or "(row)"
        why = describe_validation_error(exc, limit=1, root="row").split(": ", 1)[-1]
        return RowError(line, name, why)
    school = {n: getattr(row, n) for n in ("school_brin", "school_name", "school_level")}
    if any(v is not None for v in school.values()):
        for name, v in school.items():
            if v is None:
                return RowError(line, name, f"{name} is required when a school is given")
    return row


async def import_csv(
    store: LocalStore, path: Path, *, progress: Callable[[int, int], None] | None = None, batch: int = 500
) -> ImportReport:
    """Validate and import every good row of `path`; report the bad ones. A file that is not
    UTF-8 imports nothing; one that stops being CSV part-way keeps the rows before that line."""
    return await import_data(store, path.read_bytes(), progress=progress, batch=batch)


async def import_data(
    store: LocalStore,
    raw: bytes,
    *,
    progress: Callable[[int, int], None] | None = None,
    batch: int = 500,
) -> ImportReport:
    """`import_csv` of a file's bytes (an upload in the workspace): the same checks and report."""
    report = ImportReport()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        report.errors.append(RowError(line, "(file)", "not UTF-8 text; save the file as CSV UTF-8"))
        return report
    try:
        header, rows = _rows(text)
    except _BrokenCsv as exc:
        report.errors.append(RowError(exc.line, "(file)", f"not valid CSV ({exc.why})"))
        return report
    report.errors = check_header(header)
    if any(e.why == "required column is missing" for e in report.errors):
        return report
    total = max(text.count("\n") - 1, 0)
    pending: dict[str, dict[str, Any]] = {}
    first_seen: dict[str, int] = {}
    done = 0
    try:
        for line, record in rows:
            parsed = parse_row(line, record)
            done += 1
            if isinstance(parsed, RowError):
                report.errors.append(parsed)
            else:
                index = store.bsn_index(parsed.bsn)
                if index in first_seen:
                    report.errors.append(RowError(line, "bsn", f"the same BSN as row {first_seen[index]}"))
                else:
                    first_seen[index] = line
                    pending[index] = parsed.fields()
            if len(pending) >= batch:
                await _write(store, pending, report)
            if progress is not None:
                progress(done, total)
            if done >= MAX_ROWS:
                why = f"more than {MAX_ROWS} rows; the rest is ignored"
                report.errors.append(RowError(line, "(file)", why))
                break
    except _BrokenCsv as exc:
        why = f"not valid CSV ({exc.why}); the rows before it were read, the rest is ignored"
        report.errors.append(RowError(exc.line, "(file)", why))
    await _write(store, pending, report)
    return report


async def _write(store: LocalStore, pending: dict[str, dict[str, Any]], report: ImportReport) -> None:
    if not pending:
        return
    async with store.engine.begin() as conn:
        known = select(pupils.c.bsn_index, pupils.c.id).where(pupils.c.bsn_index.in_(list(pending)))
        ids: dict[str, str] = {index: pid for index, pid in (await conn.execute(known)).all()}
        for index, fields in pending.items():
            if index in ids:
                # Keep the id: every column's aad binds it.
                values = store.encrypt_pupil(ids[index], fields)
                await conn.execute(update(pupils).where(pupils.c.id == ids[index]).values(**values))
                report.replaced += 1
            else:
                values = store.encrypt_pupil(str(uuid.uuid4()), fields)
                await conn.execute(insert(pupils).values(bsn_index=index, **values))
                report.imported += 1
    pending.clear()


async def lookup(store: LocalStore, bsn: str) -> dict[str, Any] | None:
    """The decrypted register record for `bsn`, or None."""
    async with store.engine.connect() as conn:
        row = (
            (await conn.execute(select(pupils).where(pupils.c.bsn_index == store.bsn_index(bsn))))
            .mappings()
            .first()
        )
    return store.decrypt_pupil(row) if row is not None else None


async def get(store: LocalStore, pupil_id: str) -> dict[str, Any] | None:
    """The decrypted register record with row id `pupil_id`, or None (unknown or shredded)."""
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(pupils).where(pupils.c.id == pupil_id))).mappings().first()
    if row is None:
        return None
    try:
        return store.decrypt_pupil(row)
    except CryptoError:
        return None


_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$|^(\d{1,2})-(\d{1,2})-(\d{4})$")


def _as_date(text: str) -> str | None:
    """`YYYY-MM-DD` or the Dutch `D-M-YYYY` as ISO, else None."""
    m = _DATE.fullmatch(text)
    if m is None:
        return None
    year, month, day = (m[1], m[2], m[3]) if m[1] else (m[6], m[5], m[4])
    return f"{year}-{int(month):02d}-{int(day):02d}"


def _full_name(record: dict[str, Any]) -> str:
    parts = (record.get("given_names"), record.get("family_name_prefix"), record.get("family_name"))
    return " ".join(p for p in parts if p)


async def search(store: LocalStore, text: str, limit: int = 50) -> tuple[str, list[dict[str, Any]]]:
    """Search the register here, in the local store: a BSN (9 digits) through its index, a
    birth date (`YYYY-MM-DD` or `D-M-YYYY`) or a part of the name (case-insensitive) by
    decrypting the records. Returns the kind of search (bsn | birth_date | name | none) and
    at most `limit` records, sorted by family name."""
    text = " ".join(text.split())
    if not text:
        return "none", []
    if text.isdigit() and len(text) == 9:
        found = await lookup(store, text)
        return "bsn", [found] if found is not None else []
    date = _as_date(text)
    wanted = text.casefold()
    out = []
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(pupils))).mappings().all()
    for row in rows:
        try:
            record = store.decrypt_pupil(row)
        except CryptoError:
            continue  # shredded meanwhile
        if (record["birth_date"] == date) if date else (wanted in _full_name(record).casefold()):
            out.append(record)
    out.sort(key=lambda r: (str(r["family_name"]).casefold(), str(r["given_names"]).casefold()))
    return ("birth_date" if date else "name"), out[:limit]


async def count(store: LocalStore) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(pupils)) or 0)


async def shred(store: LocalStore) -> int:
    """Crypto-shred the register: start a new at-rest secret, re-wrap the outbox's pending
    data keys under it (so undelivered messages survive), destroy the old secret, delete
    the rows. Returns how many pupil records were shredded."""
    keystore = store.keystore
    if not isinstance(keystore, Keystore):
        raise RuntimeError("shredding needs the keystore")
    old_id, _ = keystore.at_rest_secret()
    async with store.engine.begin() as conn:
        rows = (
            await conn.execute(
                select(outbox.c.id, outbox.c.wrapped_key).where(outbox.c.wrapped_key.is_not(None))
            )
        ).all()
        keys = {r.id: unwrap_data_key(keystore, r.wrapped_key) for r in rows}
        keystore.rotate_at_rest_secret()
        for item_id, data_key in keys.items():
            _, wrapped = wrap_data_key(keystore, data_key)
            await conn.execute(outbox.update().where(outbox.c.id == item_id).values(wrapped_key=wrapped))
        n = len((await conn.execute(select(pupils.c.id))).all())
        await conn.execute(delete(pupils))
    keystore.shred_at_rest_secret(old_id)
    return n


async def enter(store: LocalStore, pupil: dict[str, Any]) -> None:
    """Enter (or replace) one pupil, already validated: `RegisterRow.fields()` shaped."""
    report = ImportReport()
    await _write(store, {store.bsn_index(pupil["bsn"]): pupil}, report)
