"""The router's ledger: which events it saw, what became of them, and the per-recipient
sequence numbers. Metadata only — never `data`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import DeadLetter, Delivery, InboxSequence, LedgerEvent, utcnow
from schemas.envelope import CloudEvent

RECEIVED, ROUTED, REJECTED = "received", "routed", "rejected"


async def record(s: AsyncSession, event: CloudEvent, sender: str, size: int) -> tuple[LedgerEvent, bool]:
    """Insert the event (status `received`) or find it again. Returns (row, is_new)."""
    existing = await find(s, event.source, event.id)
    if existing is not None:
        return existing, False
    row = LedgerEvent(
        event_id=event.id,
        source=event.source,
        type=event.type,
        sender=sender,
        addressed_to=list(event.recipients),
        subject=event.subject,
        correlationid=event.correlationid,
        status=RECEIVED,
        size=size,
    )
    try:
        async with s.begin_nested():
            s.add(row)
    except IntegrityError:  # another router took it first
        found = await find(s, event.source, event.id)
        assert found is not None
        return found, False
    return row, True


async def find(s: AsyncSession, source: str, event_id: str) -> LedgerEvent | None:
    return await s.scalar(
        select(LedgerEvent).where(LedgerEvent.source == source, LedgerEvent.event_id == event_id)
    )


async def _next_sequence(s: AsyncSession, tenant_code: str) -> int:
    seq = await s.scalar(
        update(InboxSequence)
        .where(InboxSequence.tenant_code == tenant_code)
        .values(last_sequence=InboxSequence.last_sequence + 1)
        .returning(InboxSequence.last_sequence)
    )
    if seq is not None:
        return int(seq)
    try:
        async with s.begin_nested():
            await s.execute(insert(InboxSequence).values(tenant_code=tenant_code, last_sequence=1))
        return 1
    except IntegrityError:
        return await _next_sequence(s, tenant_code)


async def assign_sequences(s: AsyncSession, row: LedgerEvent, recipients: list[str]) -> dict[str, int]:
    """The sequence of `row` in each recipient's inbox; stable across redeliveries."""
    rows = await s.scalars(select(Delivery).where(Delivery.ledger_id == row.id))
    have = {d.recipient: d.sequence for d in rows}
    for code in recipients:
        if code not in have:
            seq = await _next_sequence(s, code)
            s.add(Delivery(ledger_id=row.id, recipient=code, sequence=seq))
            have[code] = seq
    await s.flush()
    return {code: have[code] for code in recipients}


def mark(row: LedgerEvent, status: str, reason: str | None = None, when: datetime | None = None) -> None:
    row.status = status
    row.reason = reason
    row.routed_at = when or utcnow()


async def mark_published(s: AsyncSession, row: LedgerEvent, recipient: str) -> None:
    await s.execute(
        update(Delivery)
        .where(Delivery.ledger_id == row.id, Delivery.recipient == recipient)
        .values(published_at=utcnow())
    )


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
        received = LedgerEvent.id.in_(select(Delivery.ledger_id).where(Delivery.recipient == tenant))
        q = q.where({"sent": sent, "received": received}.get(direction, sent | received))
    return [_view(r, tenant) for r in await s.scalars(q)]


async def get_for(s: AsyncSession, tenant: str | None, event_id: str) -> LedgerView | None:
    for row in await s.scalars(select(LedgerEvent).where(LedgerEvent.event_id == event_id)):
        if tenant is None or row.sender == tenant or any(d.recipient == tenant for d in row.deliveries):
            return _view(row, tenant)
    return None


async def counts(s: AsyncSession) -> dict[str, int]:
    rows = await s.execute(select(LedgerEvent.status, func.count()).group_by(LedgerEvent.status))
    return {status: int(n) for status, n in rows.all()}


async def add_dead_letter(
    s: AsyncSession,
    *,
    reason: str,
    detail: str,
    sender: str | None,
    body: bytes,
    headers: dict[str, str],
) -> DeadLetter:
    row = DeadLetter(reason=reason, detail=detail[:2000], sender=sender, body=body, headers=headers)
    s.add(row)
    await s.flush()
    return row
