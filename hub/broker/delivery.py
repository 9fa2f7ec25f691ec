"""One message from the router queue as the router reads and settles it."""

from __future__ import annotations

import aiormq.abc
import structlog
from aiormq.abc import DeliveredMessage

from hub.broker.connection import BROKER_AWAY

log = structlog.get_logger("inbeeld.router")

# What settling on a channel the broker closed meanwhile raises (aiormq raises RuntimeError
# for a closed channel's writer): nothing to do then, the broker redelivers.
SETTLE_FAILURES = (*BROKER_AWAY, RuntimeError)


class RouterMessage:
    """One message from the router queue, straight from aiormq: what the router reads of it
    and how it settles it. (aio-pika's consumer wraps every delivery in an IncomingMessage
    and a second task; on the router's hot path that was a tenth of its time.)"""

    __slots__ = (
        "body",
        "channel",
        "content_type",
        "delivery_tag",
        "headers",
        "message_id",
        "redelivered",
        "user_id",
    )

    def __init__(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        self.body: bytes = message.body
        self.channel: aiormq.abc.AbstractChannel = message.channel
        self.delivery_tag: int | None = message.delivery_tag
        self.redelivered = bool(message.redelivered)
        self.content_type = properties.content_type
        self.headers = properties.headers
        self.message_id = properties.message_id
        self.user_id = properties.user_id

    async def ack(self) -> None:
        await self.channel.basic_ack(self.delivery_tag)  # type: ignore[arg-type]

    async def nack(self, requeue: bool = True) -> None:
        await self.channel.basic_nack(self.delivery_tag, requeue=requeue)  # type: ignore[arg-type]


def channel_gone(message: RouterMessage) -> bool:
    try:
        return bool(message.channel.is_closed)
    except Exception:  # a channel object in an odd state is as good as gone
        return True


async def settle(message: RouterMessage, *, ack: bool) -> None:
    """Ack (or nack for redelivery); on a channel the broker closed, there is nothing to do."""
    try:
        if ack:
            await message.ack()
        else:
            await message.nack(requeue=True)
    except SETTLE_FAILURES:
        log.info("router.settle_skipped", message_id=message.message_id)
