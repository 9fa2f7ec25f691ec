"""Hub-originated events sent from outside the router (the API process): `key.rotated`.

Same rules as the router's own hub events: recorded in the ledger as sent by `hub`, with a
per-recipient sequence from the same counters, then published to each inbox with
publisher confirms. Record inside the caller's transaction (`record`), publish after it
commits (`deliver`), so a copy never leaves before its sequence is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange
from aio_pika.exceptions import DeliveryError, PublishError
from pamqp import commands as spec
from sqlalchemy.ext.asyncio import AsyncSession

from hub import ledger
from hub.broker.connection import broker_away, connect, connection_name
from hub.broker.topology import DELIVERY
from hub.config import Settings
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
    return aio_pika.Message(
        event.to_bytes(),
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=event.id,
        type=event.type,
    )


def delivery_properties(event: CloudEvent) -> spec.Basic.Properties:
    """The same message's properties, for publishing on the AMQP channel underneath aio-pika
    (the router's hot path: no aio_pika.Message object per copy)."""
    return spec.Basic.Properties(
        content_type=CONTENT_TYPE,
        delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT),
        message_id=event.id,
        message_type=event.type,
    )


async def record(
    s: AsyncSession, event: CloudEvent, *, reason: str | None = None, detail: str | None = None
) -> dict[str, int]:
    """Record a hub event (sender `hub`, status routed) and its recipients' sequences.
    `reason` and `detail`: what a `hub.rejected` says, so its sender can ask for it."""
    rec = await ledger.record(s, event, "hub", len(event.to_bytes()))
    if rec.is_new:
        await ledger.set_status(s, [rec.id], ledger.ROUTED, reason, detail=detail)
    return await ledger.assign_sequences(s, rec.id, list(event.recipients), is_new=rec.is_new)


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
