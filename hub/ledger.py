"""The router's ledger: which events it saw, what became of them, and the per-recipient
sequence numbers. Metadata only — never `data`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, case, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import DeadLetter, DeliveryRecord, InboxSequence, LedgerEvent, utcnow
from schemas.envelope import CloudEvent

RECEIVED, ROUTED, REJECTED = "received", "routed", "rejected"
PENDING = "pending"  # a verdict not given yet: the hub has not decided (or never saw) the event
HUB_REJECTED = "nl.leerplicht.hub.rejected"
DETAIL_LENGTH = 500
_SEQUENCES = cast(Table, InboxSequence.__table__)
_EVENTS = cast(Table, LedgerEvent.__table__)
_UNIQUE = ["sender", "source", "event_id"]  # uq_ledger_sender_source_id


def _insert_ignoring_duplicates(s: AsyncSession) -> Any:
    dialect = s.get_bind().dialect.name
    return pg_insert if dialect == "postgresql" else sqlite_insert


@dataclass(frozen=True)
class Recorded:
    id: int
    status: str
    is_new: bool


async def record(s: AsyncSession, event: CloudEvent, sender: str, size: int) -> Recorded:
    """Insert the event (status `received`) or find it again.

    One statement in the common case: INSERT ... ON CONFLICT DO NOTHING on (sender, source,
    id). `sender` is the authenticated tenant: only what passed the source check is recorded,
    and one tenant's ids never collide with another's."""
    insert_ = _insert_ignoring_duplicates(s)
    new_id = await s.scalar(
        insert_(LedgerEvent)
        .values(
            event_id=event.id,
            source=event.source,
            type=event.type,
            sender=sender,
            addressed_to=list(event.recipients),
            subject=event.subject,
            correlationid=event.correlationid,
            status=RECEIVED,
            size=size,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=_UNIQUE)
        .returning(LedgerEvent.id)
    )
    if new_id is not None:
        return Recorded(int(new_id), RECEIVED, True)
    found = (
        await s.execute(
            select(LedgerEvent.id, LedgerEvent.status).where(
                LedgerEvent.sender == sender,
                LedgerEvent.source == event.source,
                LedgerEvent.event_id == event.id,
            )
        )
    ).one()
    return Recorded(int(found.id), str(found.status), False)


async def record_many(
    s: AsyncSession, items: list[tuple[CloudEvent, str, int]], *, status: str = RECEIVED
) -> list[Recorded]:
    """`record` for a batch: INSERT ... ON CONFLICT DO NOTHING RETURNING as one executemany
    (SQLAlchemy sends it as multi-row statements; the compiled form is cached whatever the
    batch size), then a lookup of the (rare) ones that were there already. Results in the
    order of `items`. The router records new events as `routed` at once (it decides them in
    the same transaction and marks the few it rejects), saving an UPDATE per batch."""
    if not items:
        return []
    now = utcnow()
    routed_at = now if status == ROUTED else None
    rows = [
        {
            "event_id": e.id,
            "source": e.source,
            "type": e.type,
            "sender": sender,
            "addressed_to": list(e.recipients),
            "subject": e.subject,
            "correlationid": e.correlationid,
            "status": status,
            "size": size,
            "received_at": now,
            "routed_at": routed_at,
        }
        for e, sender, size in items
    ]
    inserted = await s.execute(
        _insert_ignoring_duplicates(s)(_EVENTS)
        .on_conflict_do_nothing(index_elements=_UNIQUE)
        .returning(_EVENTS.c.id, _EVENTS.c.sender, _EVENTS.c.source, _EVENTS.c.event_id),
        rows,
    )
    new = {(r.sender, r.source, r.event_id): int(r.id) for r in inserted}
    result = []
    for e, sender, size in items:
        key = (sender, e.source, e.id)
        result.append(Recorded(new[key], status, True) if key in new else await record(s, e, sender, size))
    return result


async def set_status(
    s: AsyncSession,
    ids: list[int],
    status: str,
    reason: str | None = None,
    *,
    detail: str | None = None,
) -> None:
    """`detail`: a refusal's message, kept so the sender can ask for it (`verdict_for`)."""
    if ids:  # Core UPDATE: the ORM's session synchronisation cost more than the statement
        await s.execute(
            update(_EVENTS)
            .where(_EVENTS.c.id.in_(ids))
            .values(
                status=status,
                reason=reason,
                detail=detail[:DETAIL_LENGTH] if detail is not None else None,
                routed_at=utcnow(),
            )
        )


async def find(s: AsyncSession, source: str, event_id: str) -> LedgerEvent | None:
    """The event `source` sent with `id`. Only events whose source passed the check against
    their sender are recorded, so (source, id) names one event; the first recorded wins
    should rows from before that check exist."""
    return await s.scalar(
        select(LedgerEvent)
        .where(LedgerEvent.source == source, LedgerEvent.event_id == event_id)
        .order_by(LedgerEvent.id)
        .limit(1)
    )


async def _reserve_many(s: AsyncSession, wanted: dict[str, int]) -> dict[str, int]:
    """Reserve `wanted[code]` consecutive numbers in each inbox with one UPDATE ... RETURNING
    (Core, no ORM synchronisation); returns the first of each. Counters that do not exist yet
    are created (another router may create one first: then it is updated instead)."""
    if not wanted:
        return {}
    codes = sorted(wanted)  # one lock order for every router
    rows = await s.execute(
        update(_SEQUENCES)
        .where(_SEQUENCES.c.tenant_code.in_(codes))
        .values(last_sequence=_SEQUENCES.c.last_sequence + case(wanted, value=_SEQUENCES.c.tenant_code))
        .returning(_SEQUENCES.c.tenant_code, _SEQUENCES.c.last_sequence)
    )
    first = {str(code): int(last) - wanted[str(code)] + 1 for code, last in rows}
    for code in codes:
        if code in first:
            continue
        try:
            async with s.begin_nested():
                await s.execute(insert(_SEQUENCES).values(tenant_code=code, last_sequence=wanted[code]))
            first[code] = 1
        except IntegrityError:  # another router created the counter first
            first[code] = (await _reserve_many(s, {code: wanted[code]}))[code]
    return first


@dataclass
class Allocation:
    """One event's deliveries to allocate: filled in by `assign_many`."""

    ledger_id: int
    recipients: list[str]
    is_new: bool
    seqs: dict[str, int] = field(default_factory=dict)


async def assign_many(s: AsyncSession, allocations: list[Allocation]) -> None:
    """Sequences for a batch of events, in batch order, with one counter update per recipient
    (not per event). Deliveries that exist already (a redelivery) keep their numbers."""
    for a in allocations:
        if not a.is_new:
            rows = await s.scalars(select(DeliveryRecord).where(DeliveryRecord.ledger_id == a.ledger_id))
            a.seqs = {d.recipient: d.sequence for d in rows if d.recipient in a.recipients}
    wanted: dict[str, int] = {}
    for a in allocations:
        for code in a.recipients:
            if code not in a.seqs:
                wanted[code] = wanted.get(code, 0) + 1
    next_free = await _reserve_many(s, wanted)
    fresh = []
    for a in allocations:
        for code in a.recipients:
            if code not in a.seqs:
                a.seqs[code] = next_free[code]
                next_free[code] += 1
                fresh.append({"ledger_id": a.ledger_id, "recipient": code, "sequence": a.seqs[code]})
        a.seqs = {code: a.seqs[code] for code in a.recipients}
    if fresh:
        await s.execute(insert(cast(Table, DeliveryRecord.__table__)), fresh)  # Core executemany


async def recipients_of(s: AsyncSession, ledger_id: int) -> list[str]:
    """The recipients an event was allocated to."""
    rows = await s.scalars(
        select(DeliveryRecord.recipient)
        .where(DeliveryRecord.ledger_id == ledger_id)
        .order_by(DeliveryRecord.recipient)
    )
    return list(rows)


async def assign_sequences(
    s: AsyncSession, ledger_id: int, recipients: list[str], *, is_new: bool = False
) -> dict[str, int]:
    """The sequence of one event in each recipient's inbox; stable across redeliveries."""
    allocation = Allocation(ledger_id, list(recipients), is_new)
    await assign_many(s, [allocation])
    return allocation.seqs


@dataclass(frozen=True)
class LedgerView:
    event_id: str
    type: str
    sender: str
    recipients: list[str]
    status: str
    reason: str | None
    received_at: datetime
    routed_at: datetime | None
    subject: str | None
    sequence: int | None = None


def _view(row: LedgerEvent, viewer: str | None) -> LedgerView:
    recipients = sorted(d.recipient for d in row.deliveries)
    seq = next((d.sequence for d in row.deliveries if d.recipient == viewer), None)
    return LedgerView(
        row.event_id,
        row.type,
        row.sender,
        recipients,
        row.status,
        row.reason,
        row.received_at,
        row.routed_at,
        row.subject,
        seq,
    )


async def list_for(
    s: AsyncSession,
    tenant: str | None,
    *,
    limit: int = 100,
    offset: int = 0,
    direction: str = "all",
) -> list[LedgerView]:
    """Events a tenant sent or received (or all, for the operator: tenant=None)."""
    q = select(LedgerEvent).order_by(LedgerEvent.id.desc()).limit(limit).offset(offset)
    if tenant is not None:
        sent = LedgerEvent.sender == tenant
        received = LedgerEvent.id.in_(
            select(DeliveryRecord.ledger_id).where(DeliveryRecord.recipient == tenant)
        )
        q = q.where({"sent": sent, "received": received}.get(direction, sent | received))
    return [_view(r, tenant) for r in await s.scalars(q)]


async def get_for(s: AsyncSession, tenant: str | None, event_id: str) -> LedgerView | None:
    for row in await s.scalars(select(LedgerEvent).where(LedgerEvent.event_id == event_id)):
        if tenant is None or row.sender == tenant or any(d.recipient == tenant for d in row.deliveries):
            return _view(row, tenant)
    return None


@dataclass(frozen=True)
class Verdict:
    """What the hub decided about an event a tenant sent: `routed`, `rejected` (with the
    reason and message its `hub.rejected` carried) or `pending`."""

    event_id: str
    status: str
    reason: str | None = None
    detail: str | None = None


async def verdict_for(s: AsyncSession, sender: str, event_id: str) -> Verdict:
    """The verdict on the event `sender` sent with `event_id`.

    An event refused after it was recorded is `rejected` in the ledger; one refused before
    (a source that is not the sender's, a BSN in the envelope, over its rate) occupies no
    row, but the `hub.rejected` the hub sent about it does (subject: the event id, delivered
    to the sender), and so does the one sent when a recipient's inbox was full. Only the
    sender's own events are looked at: another tenant's id is `pending`, as an unknown one."""
    own = await s.scalar(
        select(LedgerEvent)
        .where(LedgerEvent.sender == sender, LedgerEvent.event_id == event_id)
        .order_by(LedgerEvent.id)
        .limit(1)
    )
    if own is not None and own.status == REJECTED:
        return Verdict(event_id, REJECTED, own.reason, own.detail)
    told = await s.scalar(
        select(LedgerEvent)
        .join(DeliveryRecord, DeliveryRecord.ledger_id == LedgerEvent.id)
        .where(
            LedgerEvent.sender == "hub",
            LedgerEvent.type == HUB_REJECTED,
            LedgerEvent.subject == event_id,
            DeliveryRecord.recipient == sender,
        )
        .order_by(LedgerEvent.id.desc())
        .limit(1)
    )
    if told is not None:
        return Verdict(event_id, REJECTED, told.reason, told.detail)
    if own is not None and own.status == ROUTED:
        return Verdict(event_id, ROUTED)
    return Verdict(event_id, PENDING)


async def counts(s: AsyncSession, since: datetime | None = None) -> dict[str, int]:
    """Events per status (received, routed, rejected); only those received `since`, if given."""
    q = select(LedgerEvent.status, func.count()).group_by(LedgerEvent.status)
    if since is not None:
        q = q.where(LedgerEvent.received_at >= since)
    rows = await s.execute(q)
    return {status: int(n) for status, n in rows.all()}


async def rejected_by_reason(s: AsyncSession, since: datetime) -> dict[str, int]:
    """Events refused since `since`, per reason (the `hub.rejected` reason), most first."""
    q = (
        select(LedgerEvent.reason, func.count())
        .where(LedgerEvent.status == "rejected", LedgerEvent.received_at >= since)
        .group_by(LedgerEvent.reason)
        .order_by(func.count().desc())
    )
    return {str(reason or "unknown"): int(n) for reason, n in (await s.execute(q)).all()}


async def dead_letters(
    s: AsyncSession,
    sender: str | None = None,
    reason: str | None = None,
    limit: int = 100,
    since: datetime | None = None,
) -> list[DeadLetter]:
    """The newest dead letters first; only `sender`'s (a tenant sees its own), `reason`'s, or
    those received `since`, when given."""
    q = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if sender is not None:
        q = q.where(DeadLetter.sender == sender)
    if reason is not None:
        q = q.where(DeadLetter.reason == reason)
    if since is not None:
        q = q.where(DeadLetter.received_at >= since)
    return list(await s.scalars(q))


async def dead_letters_waiting(s: AsyncSession) -> int:
    """Dead letters neither replayed nor discarded (yet)."""
    q = select(func.count()).where(DeadLetter.replayed_at.is_(None), DeadLetter.discarded_at.is_(None))
    return int(await s.scalar(q) or 0)


async def add_dead_letter(
    s: AsyncSession,
    *,
    reason: str,
    detail: str,
    sender: str | None,
    body: bytes,
    headers: dict[str, str],
    keep_body: bool,
) -> DeadLetter:
    """File a dead letter. Its body is kept only when `keep_body` (a signed or sealed event);
    otherwise only its size and SHA-256, so nothing readable is stored."""
    row = DeadLetter(
        reason=reason,
        detail=detail[:2000],
        sender=sender,
        body=body if keep_body else b"",
        body_size=len(body),
        body_sha256=hashlib.sha256(body).hexdigest(),
        headers=headers,
    )
    s.add(row)
    await s.flush()
    return row
