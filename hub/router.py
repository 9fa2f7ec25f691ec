"""The hub router (DESIGN section 5): the AMQP edge that turns ingress messages into
deliveries. The decision to ack, retry or dead-letter is made here and nowhere else.

    consume inbeeld.router
      -> sender from the broker-validated user_id
      -> parse envelope -> ledger (dedupe by source+id) -> authorise -> sequence per recipient
      -> publish to each inbox with publisher confirms -> mark routed -> ack
    refusal            -> hub.rejected to the sender, ack
    unparseable/orphan -> inbeeld.dlx with the reason in its headers, ack
    store unreachable  -> keep the message, back off, try again (never dead-letter for that)
    a bug              -> nack+requeue; the queue's delivery limit dead-letters it
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import DeliveryError, PublishError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit, ledger, publisher, registry
from hub.broker.connection import connect
from hub.broker.topology import DEAD, DELIVERY, DLX, declare_core
from hub.config import Settings
from hub.keys import KeyCache
from hub.registry import TenantInfo
from hub.replay import HEADER_REPLAY
from hub.routing import check_source, resolve_recipients
from hub.store.db import Database
from hub.store.models import DeadLetter, GroupMember
from hub.workflows import load_all, workflow_for
from schemas.envelope import CloudEvent, parse_event
from schemas.errors import InbeeldError, NotAuthorised
from schemas.events import HubReceipt, HubRejected, Receipt, spec_for
from schemas.validation import validate_payload

log = structlog.get_logger("inbeeld.router")

ACTOR = "hub-router"
RECEIPT_TYPE = "nl.leerplicht.receipt"
HEADER_REASON = "x-inbeeld-reason"
HEADER_DETAIL = "x-inbeeld-detail"
HEADER_SENDER = "x-inbeeld-sender"


class RecipientBusy(InbeeldError):
    reason = "recipient_busy"


class _DbDirectory:
    """`hub.routing.Directory` over one store session."""

    def __init__(self, s: AsyncSession) -> None:
        self.s = s

    async def tenant(self, code: str) -> TenantInfo | None:
        try:
            return await registry.get_tenant(self.s, code)
        except InbeeldError:
            return None

    async def group_members(self, name: str) -> list[str] | None:
        return await registry.group_members(self.s, name)

    async def groups_of(self, code: str) -> list[str]:
        rows = await self.s.scalars(select(GroupMember.group_name).where(GroupMember.tenant_code == code))
        return list(rows)


def _id_guess(body: bytes) -> str:
    """The event id if the body is JSON with a sensible one, for the rejection."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 64 else ""


class Router:
    def __init__(self, settings: Settings, db: Database, *, prefetch: int = 64) -> None:
        self.settings = settings
        self.db = db
        self.prefetch = prefetch
        self.hub_source = settings.hub_source
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._delivery: AbstractExchange | None = None
        self._dlx: AbstractExchange | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._stopped = asyncio.Event()
        # aio-pika runs consumer callbacks concurrently; one message at a time keeps each
        # inbox's sequence in publish order and a redelivered copy behind its original.
        # Scale out with more router processes (competing consumers), not concurrency here.
        self._serial = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self.handled = 0
        self.keys = KeyCache()  # the senders' and recipients' published keys (hub.keys)

    async def start(self) -> None:
        url = self.settings.amqp_url_for()
        self._connection = await connect(url, self.settings.redacted(url))
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await self._channel.set_qos(prefetch_count=self.prefetch)
        self._queue = await declare_core(self._channel, self.settings.delivery_limit)
        self._delivery = await self._channel.get_exchange(DELIVERY)
        self._dlx = await self._channel.get_exchange(DLX)
        load_all()
        self._consumer_tag = await self._queue.consume(self._on_message)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="inbeeld-sweeper")
        dead = await self._channel.get_queue(DEAD, ensure=False)
        await dead.consume(self._on_dead)
        log.info("router.started", vhost=self.settings.vhost)

    async def stop(self) -> None:
        self._stopped.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._queue is not None and self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:
                log.debug("router.cancel_failed")
        if self._connection is not None:
            await self._connection.close()
        log.info("router.stopped", handled=self.handled)

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.stop()

    # -- the one place where ack / retry / dead-letter is decided ---------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._serial:
            await self._process(message)

    async def _process(self, message: AbstractIncomingMessage) -> None:
        delay = 0.5
        while True:
            try:
                await self.handle(message)
                await message.ack()
                self.handled += 1
                return
            except (OperationalError, DBAPIError, OSError, TimeoutError) as exc:
                # The store or the broker is briefly away: keep the message, try again.
                if self._stopped.is_set():
                    return
                log.warning("router.retry", error=type(exc).__name__, delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            except Exception:
                log.exception("router.bug", message_id=message.message_id)
                await message.nack(requeue=True)
                return

    async def handle(self, message: AbstractIncomingMessage) -> None:
        body = message.body
        user = message.user_id
        replay_of = (message.headers or {}).get(HEADER_REPLAY)
        async with self.db.session() as s, s.begin():
            if replay_of is not None and user == self.settings.amqp_user:
                dead = await s.get(DeadLetter, int(str(replay_of)))
                sender = await _DbDirectory(s).tenant(dead.sender) if dead and dead.sender else None
            else:
                sender = await registry.tenant_by_broker_user(s, user) if user else None
        if sender is None:
            await self._dead_letter(message, "unknown_sender", f"no tenant for broker user {user!r}", None)
            return
        try:
            event = parse_event(body)
        except InbeeldError as exc:
            event_id = _id_guess(body)
            if not event_id:
                await self._dead_letter(message, exc.reason, exc.message, sender.code)
                return
            await self._reject_unrecorded(sender, event_id, exc)
            return
        await self._route(sender, event, len(body))

    async def _route(self, sender: TenantInfo, event: CloudEvent, size: int) -> None:
        async with self.db.session() as s, s.begin():
            row, is_new = await ledger.record(s, event, sender.code, size)
            if not is_new and row.status != ledger.RECEIVED:
                log.info("router.duplicate", event_id=event.id, sender=sender.code)
                return
            try:
                if not sender.active:
                    raise NotAuthorised(f"tenant {sender.code} is suspended")
                check_source(sender, event)
                spec = spec_for(event.type)
                recipients = await resolve_recipients(sender, event, _DbDirectory(s))
                if spec.protection == "none":
                    validate_payload(event.type, event.data)
                else:  # signed / sealed: verify against the key directory, never decrypt
                    await self.keys.check(s, sender.code, event, spec, recipients)
                workflow = workflow_for(spec.short_type)
                if workflow is not None:
                    recipients = await workflow.check(s, sender, event, recipients)
                    await workflow.record(s, sender, event, recipients)
            except InbeeldError as exc:
                ledger.mark(row, ledger.REJECTED, exc.reason)
                await audit.append(s, activity=f"route {event.short_type}"[:64], actor=ACTOR,
                                   outcome=f"rejected:{exc.reason}", sender=sender.code,
                                   recipients=list(event.recipients), subject_ref=event.id,
                                   traceparent=event.traceparent)
                rejection = self._rejection(sender, event.id, exc)
                seqs = await publisher.record(s, rejection)
                log.info("router.rejected", event_id=event.id, sender=sender.code, reason=exc.reason)
            else:
                seqs = await ledger.assign_sequences(s, row, recipients)
                rejection = None
        if rejection is None and event.type == RECEIPT_TYPE:
            # The sender learns it from the hub, which checked the delivery it confirms.
            event = self._hub_receipt(sender, event, recipients[0])
        # Publish outside the transaction: a crash after it redelivers, and the stored
        # sequences make the republished copies identical (receivers drop them by id).
        if rejection is not None:
            await self._publish(rejection.with_sequence(seqs[sender.code]), sender.code)
            return
        busy: list[str] = []
        for code, seq in seqs.items():
            try:
                await self._publish(event.with_sequence(seq), code)
            except RecipientBusy:
                busy.append(code)
        async with self.db.session() as s, s.begin():
            row2 = await ledger.find(s, event.source, event.id)
            assert row2 is not None
            ledger.mark(row2, ledger.ROUTED, "recipient_busy" if busy else None)
            await audit.append(s, activity=f"route {event.short_type}"[:64], actor=ACTOR,
                               outcome="routed" if not busy else "routed:partial",
                               sender=sender.code, recipients=list(seqs),
                               subject_ref=event.id, traceparent=event.traceparent)
        if busy:
            exc = RecipientBusy(
                f"the inbox of {', '.join(busy)} is full; send again later", field="recipients"
            )
            await self._send_rejection(sender, event.id, exc)
        log.info(
            "router.routed", event_id=event.id, type=event.type, sender=sender.code, recipients=list(seqs)
        )

    async def sweep(self, now: datetime | None = None) -> int:
        """Publish what time has made due in the workflows (reminders, expiries)."""
        due: list[tuple[CloudEvent, dict[str, int]]] = []
        async with self._serial:
            # Recorded (with sequences) in the same transaction as the state change, so a
            # crash before publishing leaves a sequence gap the recipient detects, never a
            # silently different history.
            async with self.db.session() as s, s.begin():
                for workflow in load_all():
                    for event in await workflow.sweep(s, now or datetime.now(UTC)):
                        due.append((event, await publisher.record(s, event)))
            for event, seqs in due:
                for code, seq in seqs.items():
                    await self._publish(event.with_sequence(seq), code)
        return len(due)

    async def _sweep_forever(self) -> None:
        while not self._stopped.is_set():
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("router.sweep_failed")

    async def _on_dead(self, message: AbstractIncomingMessage) -> None:
        """Keep what reached inbeeld.dead in the store, where the operator lists and replays it."""
        headers = {
            k: str(v)[:500]
            for k, v in (message.headers or {}).items()
            if k.startswith("x-inbeeld-") or k == "x-first-death-reason"
        }
        reason = headers.get(HEADER_REASON) or headers.get("x-first-death-reason", "dead")
        sender = headers.get(HEADER_SENDER) or None
        if sender is None and message.user_id:
            async with self.db.session() as s, s.begin():
                tenant = await registry.tenant_by_broker_user(s, message.user_id)
                sender = tenant.code if tenant else None
        try:
            async with self.db.session() as s, s.begin():
                await ledger.add_dead_letter(
                    s,
                    reason=reason[:32],
                    detail=headers.get(HEADER_DETAIL, ""),
                    sender=sender,
                    body=message.body,
                    headers=headers,
                )
        except (OperationalError, DBAPIError, OSError):
            await message.nack(requeue=True)
            await asyncio.sleep(1)
            return
        await message.ack()

    # -- hub-originated events ----------------------------------------------------------------

    def _rejection(self, sender: TenantInfo, event_id: str, exc: InbeeldError) -> CloudEvent:
        payload = HubRejected(
            event_id=event_id or "unknown", reason=exc.reason, message=exc.message[:500], field=exc.field
        )
        return self.hub_event(
            "hub.rejected",
            payload.model_dump(exclude_none=True),
            sender.code,
            about=f"{sender.code}:{event_id}:{exc.reason}",
            subject=event_id or None,
        )

    def hub_event(
        self, short_type: str, data: dict[str, Any], recipient: str, *, about: str, subject: str | None = None
    ) -> CloudEvent:
        return publisher.hub_event(self.settings, short_type, data, [recipient], about=about, subject=subject)

    def _hub_receipt(self, sender: TenantInfo, receipt: CloudEvent, to: str) -> CloudEvent:
        data = Receipt.model_validate(receipt.data)
        payload = HubReceipt(event_id=data.event_id, recipient=sender.code,
                             processed_at=receipt.time.isoformat())
        return self.hub_event("hub.receipt", payload.model_dump(), to,
                              about=f"{sender.code}:{data.event_source}:{data.event_id}",
                              subject=data.event_id)

    async def _send_rejection(self, sender: TenantInfo, event_id: str, exc: InbeeldError) -> None:
        rejection = self._rejection(sender, event_id, exc)
        async with self.db.session() as s, s.begin():
            seqs = await publisher.record(s, rejection)
        await self._publish(rejection.with_sequence(seqs[sender.code]), sender.code)

    async def _reject_unrecorded(self, sender: TenantInfo, event_id: str, exc: InbeeldError) -> None:
        log.info("router.rejected", event_id=event_id, sender=sender.code, reason=exc.reason)
        async with self.db.session() as s, s.begin():
            await audit.append(s, activity="route", actor=ACTOR, outcome=f"rejected:{exc.reason}",
                               sender=sender.code, subject_ref=event_id)
        await self._send_rejection(sender, event_id, exc)

    async def publish_hub_event(self, event: CloudEvent) -> None:
        """Record and deliver a hub-originated event (hub.*, key.rotated, transfer.expired)."""
        async with self.db.session() as s, s.begin():
            seqs = await publisher.record(s, event)
        for code, seq in seqs.items():
            await self._publish(event.with_sequence(seq), code)

    # -- transport --------------------------------------------------------------------------

    async def _publish(self, event: CloudEvent, recipient: str) -> None:
        assert self._delivery is not None
        message = publisher.delivery_message(event)
        try:
            await self._delivery.publish(
                message,
                routing_key=recipient,
                mandatory=True,
                timeout=self.settings.publish_timeout,
            )
        except PublishError:
            raise RecipientBusy(f"{recipient} has no inbox on this hub yet") from None
        except DeliveryError:
            # Basic.Nack: the inbox is at its length limit (x-overflow reject-publish).
            raise RecipientBusy(f"the inbox of {recipient} refused the message") from None

    async def _dead_letter(
        self, message: AbstractIncomingMessage, reason: str, detail: str, sender: str | None
    ) -> None:
        assert self._dlx is not None
        headers = {HEADER_REASON: reason, HEADER_DETAIL: detail[:500], HEADER_SENDER: sender or ""}
        await self._dlx.publish(
            aio_pika.Message(
                message.body,
                headers=headers,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type=message.content_type,
            ),
            routing_key="",
            timeout=self.settings.publish_timeout,
        )
        log.warning("router.dead_letter", reason=reason, sender=sender)
