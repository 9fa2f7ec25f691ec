"""Delivery failures: a recipient's connector could not open an event (bad signature, not
decryptable with its keys, invalid inside) and tells the event's sender with
`delivery.failed`. The hub checks that the reporter really was a recipient of that event and
that the report goes to its sender only, then routes it unchanged (it carries a reference and
a reason code, no content). A failed transfer step is marked on the transfer, so both parties
see it in the status API (`delivery_failed`) while the state stays what it was."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import ledger
from hub.store.models import DeliveryRecord, LedgerEvent
from hub.tenants import TenantInfo
from hub.verified import VerifiedEvent
from hub.workflows.transfers import TransferWorkflow
from schemas.envelope import CloudEvent
from schemas.errors import NotAuthorised
from schemas.events import DeliveryFailed

_TRANSFER_PREFIX = "nl.leerplicht.transfer."


class DeliveryFailures:
    prefixes: tuple[str, ...] = ("delivery.failed",)

    def __init__(self, transfers: TransferWorkflow) -> None:
        self.transfers = transfers  # whose timeline a failed transfer delivery goes on

    async def _original(self, s: AsyncSession, reporter: TenantInfo, verified: VerifiedEvent) -> LedgerEvent:
        report = verified.payload_as(DeliveryFailed)
        original = await ledger.find(s, report.event_source, report.event_id)
        delivered = None
        if original is not None and original.type == report.event_type:
            delivered = await s.scalar(
                select(DeliveryRecord.ledger_id).where(
                    DeliveryRecord.ledger_id == original.id, DeliveryRecord.recipient == reporter.code
                )
            )
        if original is None or delivered is None:
            # One answer for "no such event" and "not delivered to you": no existence oracle.
            raise NotAuthorised(
                f"{reporter.code} did not receive a {report.event_type} {report.event_id}",
                field="data.event_id",
            )
        return original

    async def check(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> list[str]:
        original = await self._original(s, sender, verified)
        if recipients != [original.sender]:
            raise NotAuthorised(
                "a delivery failure goes to the sender of the event it reports", field="recipients"
            )
        return recipients

    async def record(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> None:
        original = await self._original(s, sender, verified)
        if original.type.startswith(_TRANSFER_PREFIX) and original.subject:
            await self.transfers.mark_delivery_failed(s, original.subject, sender.code, verified.event.id)

    async def sweep(self, s: AsyncSession, now: datetime) -> list[CloudEvent]:
        return []
