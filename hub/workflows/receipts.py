"""End-to-end receipts: a recipient's connector confirms it processed an event; the hub
checks that it really received that event, records the confirmation on the delivery, and
tells the original sender with `hub.receipt` (as Digikoppeling's reliable profile does)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hub import ledger
from hub.store.models import DeliveryRecord, utcnow
from hub.tenants import TenantInfo
from hub.verified import VerifiedEvent
from schemas.envelope import CloudEvent
from schemas.errors import NotAuthorised
from schemas.events import Receipt


class Receipts:
    prefixes: tuple[str, ...] = ("receipt",)

    async def _delivery(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent
    ) -> tuple[str, DeliveryRecord]:
        receipt = verified.payload_as(Receipt)
        original = await ledger.find(s, receipt.event_source, receipt.event_id)
        delivery = None
        if original is not None:
            delivery = await s.scalar(
                select(DeliveryRecord).where(
                    DeliveryRecord.ledger_id == original.id, DeliveryRecord.recipient == sender.code
                )
            )
        if original is None or delivery is None:
            raise NotAuthorised(
                f"{sender.code} did not receive event {receipt.event_id}", field="data.event_id"
            )
        return original.sender, delivery

    async def check(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> list[str]:
        original_sender, _ = await self._delivery(s, sender, verified)
        if recipients != [original_sender]:
            raise NotAuthorised("a receipt goes to the sender of the event it confirms", field="recipients")
        return recipients

    async def record(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> None:
        _, delivery = await self._delivery(s, sender, verified)
        if delivery.confirmed_at is None:
            await s.execute(
                update(DeliveryRecord)
                .where(
                    DeliveryRecord.ledger_id == delivery.ledger_id,
                    DeliveryRecord.recipient == sender.code,
                )
                .values(confirmed_at=utcnow())
            )

    async def sweep(self, s: AsyncSession, now: datetime) -> list[CloudEvent]:
        return []
