"""The processing log: append-only, hash-chained records shaped after the Dutch
"Logboek dataverwerkingen" standard (trace and span ids, processing activity, the parties,
the outcome) — never personal data.

Each record's hash covers its content and the previous record's hash; `prev_hash` is unique,
so two writers can never fork the chain (the loser retries on top of the winner). The chain's
form (canonical fields, how a hash links to the previous one) is `schemas.audit_chain`.

A hash covers `_HASHED` always and each of `_LOGBOEK` only when it is set: the Logboek fields
came later (revision 0014), and a record written before them, where they are empty, hashes as
it always did. An entry with the hub's own span (`Entry.span`) is recorded with that span's
ids, the sender's span as its parent (from the event's traceparent), a status and an end."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import AuditRecord, utcnow
from schemas.audit_chain import GENESIS, ChainReport, Link, link
from schemas.audit_chain import verify as verify_chain
from schemas.processing_log import status_of

__all__ = [
    "GENESIS",
    "Appended",
    "ChainReport",
    "Entry",
    "append",
    "append_many",
    "records_for",
    "trace_ids",
    "verify",
]
_HASHED = (
    "time",
    "trace_id",
    "span_id",
    "activity",
    "actor",
    "subject_ref",
    "sender",
    "recipients",
    "outcome",
)
_LOGBOEK = ("parent_span_id", "end_time", "status_code", "processing_activity_id")


def _fields(r: Mapping[str, Any]) -> dict[str, object]:
    """What a record's hash covers (its row as a mapping)."""
    fields: dict[str, object] = {name: r[name] for name in _HASHED}
    fields["time"] = r["time"].isoformat()
    fields["recipients"] = list(r["recipients"])
    for name in _LOGBOEK:
        value = r[name]
        if value is not None:
            fields[name] = value.isoformat() if isinstance(value, datetime) else value
    return fields


def trace_ids(traceparent: str | None) -> tuple[str | None, str | None]:
    """(trace id, parent span id) of a W3C traceparent, if any."""
    if not traceparent:
        return None, None
    parts = traceparent.split("-")
    return (parts[1], parts[2]) if len(parts) == 4 else (None, None)


@dataclass(frozen=True)
class Entry:
    activity: str
    actor: str
    outcome: str
    sender: str | None = None
    recipients: Sequence[str] = ()
    subject_ref: str | None = None
    traceparent: str | None = None
    span: tuple[str, str] | None = None  # (trace id, span id) of the hub's own operation
    processing_activity_id: str | None = None


async def append(
    s: AsyncSession,
    *,
    activity: str,
    actor: str,
    outcome: str,
    sender: str | None = None,
    recipients: Sequence[str] = (),
    subject_ref: str | None = None,
    traceparent: str | None = None,
    when: datetime | None = None,
    span: tuple[str, str] | None = None,
    processing_activity_id: str | None = None,
) -> None:
    entry = Entry(
        activity,
        actor,
        outcome,
        sender,
        tuple(recipients),
        subject_ref,
        traceparent,
        span,
        processing_activity_id,
    )
    await append_many(s, [entry], when=when)


@dataclass(frozen=True)
class Appended:
    head: str | None  # the chain's last hash after the append
    retries: int  # times another writer had appended first (0: the head given was current)


async def append_many(
    s: AsyncSession, entries: Sequence[Entry], *, when: datetime | None = None, head: str | None = None
) -> Appended:
    """Chain `entries` onto the log in one statement (retrying on top of a concurrent writer).
    `head`, the last hash this writer knows, saves reading it; a stale one only costs a retry
    (prev_hash is unique, so it can never fork the chain)."""
    if not entries:
        return Appended(head, 0)
    table = cast(Table, AuditRecord.__table__)
    for attempt in range(20):
        if head is None:
            last = await s.scalar(select(AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1))
            head = last or GENESIS
        prev = head
        rows = []
        now = utcnow()
        for e in entries:
            trace_id, span_id = trace_ids(e.traceparent)
            parent = None
            if e.span is not None:  # our own operation; the sender's is its parent
                parent, (trace_id, span_id) = span_id, e.span
            row: dict[str, Any] = {
                "time": when or now,
                "end_time": now,
                "trace_id": trace_id,
                "span_id": span_id,
                "parent_span_id": parent,
                "status_code": status_of(e.outcome),
                "processing_activity_id": e.processing_activity_id,
                "activity": e.activity[:64],
                "actor": e.actor[:64],
                "subject_ref": e.subject_ref,
                "sender": e.sender,
                "recipients": list(e.recipients),
                "outcome": e.outcome[:32],
                "prev_hash": prev,
            }
            row["hash"] = prev = link(prev, _fields(row))
            rows.append(row)
        try:
            # Core executemany: no ORM unit of work, one cached compiled statement. PostgreSQL
            # aborts the transaction on a failed statement, so there it runs in a savepoint;
            # SQLite undoes only the statement (and lets one writer in at a time anyway).
            if s.get_bind().dialect.name == "sqlite":
                await s.execute(insert(table), rows)
            else:
                async with s.begin_nested():
                    await s.execute(insert(table), rows)
            return Appended(prev, attempt)
        except IntegrityError:  # another writer appended first; chain on top of it
            head = None
            continue
    raise RuntimeError("could not append to the audit chain")


async def verify(s: AsyncSession) -> ChainReport:
    """Recompute every hash in order; report the first record that does not fit."""
    records = await s.scalars(select(AuditRecord).order_by(AuditRecord.seq))
    return verify_chain(
        Link(r.seq, r.prev_hash, r.hash, _fields({n: getattr(r, n) for n in (*_HASHED, *_LOGBOEK)}))
        for r in records
    )


async def records_for(s: AsyncSession, tenant: str | None, limit: int = 100) -> list[AuditRecord]:
    return await search(s, tenant, limit=limit)


async def search(
    s: AsyncSession,
    tenant: str | None = None,
    *,
    activity: str | None = None,
    subject_ref: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """The newest records first: about `tenant` (its sender or a recipient; among the newest
    `limit` x 5 that match the rest), of one `activity`, about one `subject_ref` (an event id,
    a transfer, `tenant:GM0307`, ...)."""
    q = select(AuditRecord).order_by(AuditRecord.seq.desc())
    if activity is not None:
        q = q.where(AuditRecord.activity == activity)
    if subject_ref is not None:
        q = q.where(AuditRecord.subject_ref == subject_ref)
    rows = await s.scalars(q.limit(limit * 5 if tenant is not None else limit))
    out = [r for r in rows if tenant is None or r.sender == tenant or tenant in r.recipients]
    return out[:limit]
