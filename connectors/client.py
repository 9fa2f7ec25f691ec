"""The connector's AMQP client: publish to the hub's ingress, consume the tenant's inbox.

Every publish carries `user_id` = the tenant's broker user (the broker refuses a spoofed one)
and waits for a publisher confirm; the connection reconnects on its own (robust)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from schemas.envelope import CONTENT_TYPE, CloudEvent, parse_event, source_urn
from schemas.errors import InbeeldError

INGRESS = "inbeeld.ingress"
INBOX_PREFIX = "inbeeld.inbox."


class ConnectorError(InbeeldError):
    reason = "connector_error"


@dataclass
class InboxMessage:
    """One event from the inbox. Call `ack()` once it is safely processed, or `reject()`."""

    event: CloudEvent
    _raw: AbstractIncomingMessage = field(repr=False)

    async def ack(self) -> None:
        await self._raw.ack()

    async def reject(self, requeue: bool = False) -> None:
        await self._raw.reject(requeue=requeue)


class Connector:
    def __init__(
        self,
        tenant: str,
        amqp_url: str,
        *,
        system: str = "connector",
        oin: str | None = None,
        publish_timeout: float = 10.0,
    ) -> None:
        self.tenant = tenant
        self.amqp_url = amqp_url
        self.username = unquote(urlsplit(amqp_url).username or "")
        self.source = source_urn(system=system, oin=oin, cbs=None if oin else tenant)
        self.publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._ingress: AbstractExchange | None = None

    async def __aenter__(self) -> Connector:
        await self.connect()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(self.amqp_url, timeout=10)
        except (OSError, TimeoutError, aio_pika.exceptions.AMQPConnectionError) as exc:
            host = urlsplit(self.amqp_url).hostname
            raise ConnectorError(f"cannot reach the hub's broker at {host} ({exc})") from None
        self._channel = await self._connection.channel(publisher_confirms=True)
        # get_exchange(ensure=False): a tenant may not declare anything, not even passively.
        self._ingress = await self._channel.get_exchange(INGRESS, ensure=False)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    def event(
        self,
        event_type: str,
        data: Any,
        recipients: Sequence[str],
        *,
        subject: str | None = None,
        correlationid: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CloudEvent:
        return CloudEvent(
            source=self.source,
            type=event_type,
            recipients=list(recipients),
            subject=subject,
            correlationid=correlationid,
            data=data,
            **(extra or {}),
        )

    async def publish(self, event: CloudEvent) -> CloudEvent:
        """Publish a ready-made event to the hub, confirmed by the broker."""
        if self._ingress is None:
            raise ConnectorError("connector is not connected")
        message = aio_pika.Message(
            event.to_bytes(),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.id,
            type=event.type,
            user_id=self.username,
        )
        await self._ingress.publish(message, routing_key=event.type, timeout=self.publish_timeout)
        return event

    async def send(self, event_type: str, data: Any, recipients: Sequence[str], **kwargs: Any) -> CloudEvent:
        return await self.publish(self.event(event_type, data, recipients, **kwargs))

    async def inbox(
        self, *, prefetch: int = 32, idle_timeout: float | None = None
    ) -> AsyncIterator[InboxMessage]:
        """Events addressed to this tenant, in arrival order. Stops after `idle_timeout`
        seconds without a message (None: never)."""
        if self._connection is None:
            raise ConnectorError("connector is not connected")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue: AbstractQueue = await channel.get_queue(INBOX_PREFIX + self.tenant, ensure=False)
        try:
            async with queue.iterator() as it:
                while True:
                    try:
                        raw = await asyncio.wait_for(it.__anext__(), idle_timeout)
                    except (TimeoutError, StopAsyncIteration):
                        return
                    yield InboxMessage(parse_event(raw.body), raw)
        finally:
            await channel.close()
