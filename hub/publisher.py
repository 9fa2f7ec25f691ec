"""Hub-originated events sent from outside the router (the API process): `key.rotated`.

Same rules as the router's own hub events: recorded in the ledger as sent by `hub`, with a
per-recipient sequence from the same counters, then published to each inbox with
publisher confirms. Record inside the caller's transaction (`record`), publish after it
commits (`deliver`), so a copy never leaves before its sequence is stored.

A transactional outbox keeps the announcement from being lost: `record` also writes each
copy to `hub_outbox` in that transaction, `published` deletes them once the broker has
confirmed, and whatever a broker failure left there (the change committed, its announcement
not sent) a router's sweep publishes later (`pending`), with the same id and sequence; a
recipient that got it already drops the second copy by its id.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange
from aio_pika.exceptions import DeliveryError, PublishError
from pamqp import commands as spec
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import ledger, retention
from hub.broker.connection import broker_away, connect, connection_name
from hub.broker.topology import DELIVERY
from hub.config import Settings
from hub.errors import Transient
from hub.store.db import Database
from hub.store.models import HubOutboxCopy
from schemas.envelope import CONTENT_TYPE, CloudEvent
from schemas.events import EVENTS

log = structlog.get_logger("inbeeld.publisher")

# The router's namespace, so ids of hub events are derived the same way wherever they are made.
HUB_NAMESPACE = uuid.UUID("6f3c1b8e-2d4a-4c8e-9b7a-1e5d3c2b1a00")
MAX_RECIPIENTS = 500  # the envelope's limit; larger audiences get one event per chunk


def hub_event(
    settings: Settings,
    short_type: str,
    data: dict[str, Any],
    recipients: Sequence[str],
    *,
    about: str,
    subject: str | None = None,
) -> CloudEvent:
    """A hub event whose id is derived from what it is about (a retry makes a duplicate)."""
    spec = EVENTS["nl.leerplicht." + short_type]
    return CloudEvent(
        id=str(uuid.uuid5(HUB_NAMESPACE, f"{short_type}:{about}")),
        source=settings.hub_source,
        type=spec.type,
        dataschema=spec.dataschema,
        subject=subject if subject and len(subject) <= 100 else None,
        recipients=list(recipients),
        data=data,
    )


def delivery_message(event: CloudEvent) -> aio_pika.Message:
    """The AMQP message carrying one recipient's copy (sequence already stamped)."""
    return copy_message(event.to_bytes(), event.id, event.type)


def copy_message(body: bytes, event_id: str, event_type: str) -> aio_pika.Message:
    """The AMQP message of a copy whose body is made already (a retained one, `hub.retention`):
    the same properties as every copy the hub publishes."""
    return aio_pika.Message(
        body,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event_id,
        type=event_type,
    )


def copy_properties(event_id: str, event_type: str) -> spec.Basic.Properties:
    """The same message's properties, for publishing on the AMQP channel underneath aio-pika
    (the router's hot path: no aio_pika.Message object per copy)."""
    return spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT),
        message_id=event_id,
        message_type=event_type,
    )


async def record(
    s: AsyncSession,
    event: CloudEvent,
    *,
    reason: str | None = None,
    detail: str | None = None,
    outbox: bool = True,
) -> dict[str, int]:
    """Record a hub event (sender `hub`, status routed) and its recipients' sequences.
    `reason` and `detail`: what a `hub.rejected` says, so its sender can ask for it.
    `outbox=False` for the router's rejections: the message that caused one is acked only
    after it is published, so a broker failure makes the router decide it again."""
    rec = await ledger.record(s, event, "hub", len(event.to_bytes()))
    if rec.is_new:
        await ledger.set_status(s, [rec.id], ledger.ROUTED, reason, detail=detail)
    sequences = await ledger.assign_sequences(s, rec.id, list(event.recipients), is_new=rec.is_new)
    bodies = {code: event.with_sequence(seq).to_bytes() for code, seq in sequences.items()}
    if outbox and rec.is_new:  # a hub event recorded again (a retry) was queued the first time
        s.add_all(
            HubOutboxCopy(event_id=event.id, event_type=event.type, recipient=code, body=body)
            for code, body in bodies.items()
        )
    # Kept for a resync like the router's copies (the same bytes are published).
    keepable = retention.may_keep(event)
    await retention.keep(
        s,
        [
            retention.Copy(code, seq, event.id, event.type, bodies[code], keepable)
            for code, seq in sequences.items()
        ],
    )
    return sequences


async def published(db: Database, event_ids: Sequence[str]) -> None:
    """The copies of these events are out (confirmed, or refused by a full inbox, which the
    ledger keeps): nothing left to publish for them."""
    if event_ids:
        async with db.session() as s, s.begin():
            await s.execute(delete(HubOutboxCopy).where(HubOutboxCopy.event_id.in_(list(event_ids))))


async def pending(s: AsyncSession, before: datetime, limit: int = 500) -> list[HubOutboxCopy]:
    """Copies written before `before` and still not published, oldest first."""
    rows = await s.scalars(
        select(HubOutboxCopy).where(HubOutboxCopy.created_at < before).order_by(HubOutboxCopy.id).limit(limit)
    )
    return list(rows)


async def forget(s: AsyncSession, ids: Sequence[int]) -> None:
    """Delete outbox copies by row id (published by a sweep)."""
    if ids:
        await s.execute(delete(HubOutboxCopy).where(HubOutboxCopy.id.in_(list(ids))))


class HubPublisher:
    """Publishes recorded hub events to the delivery exchange over its own connection."""

    def __init__(self, settings: Settings, delivery: AbstractExchange) -> None:
        self.settings = settings
        self._delivery = delivery

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[HubPublisher]:
        """Connect first: a caller that cannot announce should fail before changing state."""
        url = settings.amqp_url_for()
        conn = await connect(
            url,
            settings.redacted(url),
            name=connection_name("inbeeld-publisher"),
            ssl_context=settings.amqp_ssl_context(),
        )
        try:
            channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
            yield cls(settings, await channel.get_exchange(DELIVERY, ensure=False))
        finally:
            await conn.close()

    async def deliver(self, event: CloudEvent, sequences: dict[str, int]) -> list[str]:
        """Publish each recipient's copy; returns the recipients whose inbox refused it. The
        broker briefly away raises `Transient`."""
        refused = []
        async with broker_away():
            for code, seq in sequences.items():
                try:
                    await self._delivery.publish(
                        delivery_message(event.with_sequence(seq)),
                        routing_key=code,
                        mandatory=True,
                        timeout=self.settings.publish_timeout,
                    )
                except (PublishError, DeliveryError):
                    refused.append(code)
        if refused:
            log.warning("publisher.refused", event_id=event.id, type=event.type, recipients=refused)
        return refused

    async def republish(self, body: bytes, event_id: str, event_type: str, recipient: str) -> bool:
        """Publish a retained copy again, unchanged; False when the inbox refused it (full, or
        not there). The broker briefly away raises `Transient`."""
        async with broker_away():
            try:
                await self._delivery.publish(
                    copy_message(body, event_id, event_type),
                    routing_key=recipient,
                    mandatory=True,
                    timeout=self.settings.publish_timeout,
                )
            except (PublishError, DeliveryError):
                return False
        return True

    async def announce(self, db: Database, events: Sequence[tuple[CloudEvent, dict[str, int]]]) -> bool:
        """Publish recorded hub events, then clear them from the outbox. The broker failing
        meanwhile leaves them there for a router's sweep (False): the change they announce has
        committed, and its announcement is not lost."""
        try:
            for event, sequences in events:
                await self.deliver(event, sequences)
        except Transient as exc:
            log.warning("publisher.left_for_sweep", events=[e.id for e, _ in events], error=exc.message)
            return False
        await published(db, [event.id for event, _ in events])
        return True
