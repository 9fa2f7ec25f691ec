"""What the hub knows of each tenant's traffic and keys, for the console's tenants page: the
last event it sent and the last copy published to it, the age of the oldest message waiting in
its inbox, and its key set (keys in use and the first expiry among them).

RabbitMQ does not say how old a queue's oldest message is. The hub numbers every copy for a
tenant (its inbox sequence) and an inbox is read in order by its one active consumer, so with
`depth` messages waiting the oldest is the copy numbered `last - depth + 1`: its publication
time is the oldest message's age (an estimate when a connector acknowledges out of order).

Metadata only: times, counts and key ids."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import DeliveryRecord, LedgerEvent, TenantKey

__all__ = ["KEYS_IN_USE", "TenantActivity", "for_tenants"]

KEYS_IN_USE = ("primary", "pending")  # a key's status in the directory


@dataclass(frozen=True)
class TenantActivity:
    last_sent: datetime | None = None  # the last event it sent, as the router received it
    last_received: datetime | None = None  # the last copy published to its inbox
    oldest_waiting: datetime | None = None  # publication of the oldest message in its inbox
    keys: int = 0  # keys in use (primary or pending)
    keys_expire: datetime | None = None  # the first expiry among them (None: none expires)


async def for_tenants(
    s: AsyncSession, codes: Iterable[str], depths: Mapping[str, int | None]
) -> dict[str, TenantActivity]:
    """Every tenant in `codes`; `depths` is each one's inbox depth from the broker (None or
    missing: not known, so no oldest message)."""
    codes = list(codes)
    if not codes:
        return {}
    sent: dict[str, datetime | None] = {
        code: at
        for code, at in await s.execute(
            select(LedgerEvent.sender, func.max(LedgerEvent.received_at))
            .where(LedgerEvent.sender.in_(codes))
            .group_by(LedgerEvent.sender)
        )
    }
    published = {
        code: (last_at, last_seq)
        for code, last_at, last_seq in (
            await s.execute(
                select(
                    DeliveryRecord.recipient,
                    func.max(DeliveryRecord.published_at),
                    func.max(DeliveryRecord.sequence),
                )
                .where(DeliveryRecord.recipient.in_(codes))
                .group_by(DeliveryRecord.recipient)
            )
        ).all()
    }
    wanted = [
        (code, published[code][1] - depth + 1)
        for code in codes
        if (depth := depths.get(code)) and code in published and published[code][1] is not None
    ]
    oldest: dict[str, datetime | None] = {}
    if wanted:
        rows = await s.execute(
            select(DeliveryRecord.recipient, DeliveryRecord.published_at).where(
                tuple_(DeliveryRecord.recipient, DeliveryRecord.sequence).in_(wanted)
            )
        )
        oldest = {code: at for code, at in rows.all()}
    keys = {
        code: (int(n), expires)
        for code, n, expires in (
            await s.execute(
                select(TenantKey.tenant_code, func.count(), func.min(TenantKey.expires_at))
                .where(TenantKey.tenant_code.in_(codes), TenantKey.status.in_(KEYS_IN_USE))
                .group_by(TenantKey.tenant_code)
            )
        ).all()
    }
    return {
        code: TenantActivity(
            last_sent=sent.get(code),
            last_received=published.get(code, (None, None))[0],
            oldest_waiting=oldest.get(code),
            keys=keys.get(code, (0, None))[0],
            keys_expire=keys.get(code, (0, None))[1],
        )
        for code in codes
    }
