"""The processing log: append-only, hash-chained records shaped after the Dutch
"Logboek dataverwerkingen" standard (trace and span ids, processing activity, the parties,
the outcome) — never personal data.

One chain per tenant, not one for the hub: a record chains on the previous record of its
chain (`chain_of`): `tenant:<code>` for a record about one tenant (the sender it acted for,
else the one tenant it names), `hub` for the rest (an operator action about several tenants or
none). Why per tenant: routers that append at once then only meet where their batches are
about the same tenant, and each chain verifies on its own, so a broken chain names the tenant
whose records were altered while every other chain still verifies (a tenant's chain is also
what it can be shown of the hub's log). The records written before revision 0017, when there
was one chain, stay as they were on the closed chain `legacy`, which still verifies from
`GENESIS`; nothing is appended to it any more.

How writers never fork a chain: on PostgreSQL an append first takes a transaction-scoped
advisory lock per chain it writes (in one order for everyone), then reads each chain's head
and inserts. A second writer of the same chain waits for the first to commit instead of
inserting on a stale head and retrying: no conflict, no retry. A transaction that appends
twice, to different chains, can still meet another doing the reverse; PostgreSQL detects that
deadlock and the store adapter raises `Transient` (the router retries the batch). SQLite lets
one writer in at a time; `prev_hash` is unique on both, so a stale head can never fork a chain
(on SQLite the append retries on the real head).

The chain's form (canonical fields, how a hash links to the previous one, where a keyed chain
starts) is `schemas.audit_chain`. A hash covers `_HASHED` always and each of `_LOGBOEK` only
when it is set: the Logboek fields came later (revision 0014), and a record written before
them, where they are empty, hashes as it always did. An entry with the hub's own span
(`Entry.span`) is recorded with that span's ids, the sender's span as its parent (from the
event's traceparent), a status and an end."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from typing import Any, cast

from sqlalchemy import Table, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import AuditRecord, utcnow
from schemas.audit_chain import GENESIS, ChainReport, ChainsReport, Link, genesis, link, verify_chains
from schemas.processing_log import status_of

__all__ = [
    "GENESIS",
    "HUB",
    "LEGACY",
    "Appended",
    "ChainReport",
    "ChainsReport",
    "Entry",
    "append",
    "append_many",
    "chain_of",
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

HUB = "hub"  # the chain of records about no one tenant
LEGACY = "legacy"  # the one chain of the records written before revision 0017 (closed)
# The key space of the chains' advisory locks (PostgreSQL's two-int form; the migration lock
# uses the one-bigint form, a space of its own).
_LOCK_SPACE = 0x1B_EE1E


def chain_of(sender: str | None, recipients: Sequence[str]) -> str:
    """The chain a record goes on: the tenant it is about (its sender, else the one tenant it
    names), else the hub's."""
    if sender:
        return f"tenant:{sender}"
    if len(recipients) == 1:
        return f"tenant:{recipients[0]}"
    return HUB


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
    heads: Mapping[str, str]  # each chain written: its last hash after the append
    retries: int  # times the head read was stale (SQLite only; 0 where the chains are locked)


def _lock_id(chain: str) -> int:
    """A chain's advisory lock (32 bits of its key's SHA-256; chains that share one only wait
    for each other)."""
    return int.from_bytes(hashlib.sha256(chain.encode()).digest()[:4], "big", signed=True)


async def _lock(s: AsyncSession, chains: Sequence[str]) -> None:
    """Hold the chains' locks until the transaction ends, taken in ascending lock order (one
    order for every writer; unnest keeps the array's order)."""
    ids = sorted({_lock_id(c) for c in chains})
    await s.execute(
        text("SELECT pg_advisory_xact_lock(:space, k) FROM unnest(CAST(:ids AS integer[])) AS k"),
        {"space": _LOCK_SPACE, "ids": ids},
    )


async def _heads(s: AsyncSession, chains: Sequence[str]) -> dict[str, str]:
    """Each chain's last hash (its genesis while empty), in one query: a backward index scan
    per chain."""
    last = [
        select(AuditRecord.hash)
        .where(AuditRecord.chain == c)
        .order_by(AuditRecord.seq.desc())
        .limit(1)
        .scalar_subquery()
        for c in chains
    ]
    row = (await s.execute(select(*last))).one()
    return {c: h or genesis(c) for c, h in zip(chains, row, strict=True)}


async def append_many(s: AsyncSession, entries: Sequence[Entry], *, when: datetime | None = None) -> Appended:
    """Chain `entries`, each on the chain of the tenant it is about, in one statement."""
    if not entries:
        return Appended({}, 0)
    table = cast(Table, AuditRecord.__table__)
    keys = [chain_of(e.sender, e.recipients) for e in entries]
    chains = sorted(set(keys))
    locked = s.get_bind().dialect.name == "postgresql"
    if locked:
        await _lock(s, chains)
    for attempt in range(20):
        heads = await _heads(s, chains)
        rows = []
        now = utcnow()
        for e, key in zip(entries, keys, strict=True):
            trace_id, span_id = trace_ids(e.traceparent)
            parent = None
            if e.span is not None:  # our own operation; the sender's is its parent
                parent, (trace_id, span_id) = span_id, e.span
            row: dict[str, Any] = {
                "chain": key,
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
                "prev_hash": heads[key],
            }
            row["hash"] = heads[key] = link(heads[key], _fields(row))
            rows.append(row)
        try:
            # Core executemany: no ORM unit of work, one cached compiled statement per shape.
            await s.execute(insert(table), rows)
            return Appended(heads, attempt)
        except IntegrityError:
            if locked:  # a writer that skipped the lock: a bug, not a race to retry
                raise
            continue  # SQLite undid the statement only: chain on the real heads
    raise RuntimeError("could not append to the audit chains")


async def verify(s: AsyncSession) -> ChainsReport:
    """Recompute every chain in order, each on its own; report the first record of each that
    does not fit."""
    records = await s.scalars(select(AuditRecord).order_by(AuditRecord.chain, AuditRecord.seq))
    chains = (
        (
            key,
            (
                Link(r.seq, r.prev_hash, r.hash, _fields({n: getattr(r, n) for n in (*_HASHED, *_LOGBOEK)}))
                for r in rows
            ),
        )
        for key, rows in groupby(records, key=lambda r: r.chain)
    )
    return verify_chains(chains, starts={LEGACY: GENESIS})


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
