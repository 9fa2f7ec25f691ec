"""The broker topology of DESIGN section 4, declared idempotently.

tenant --publish(user_id)--> inbeeld.ingress (topic) --#--> inbeeld.router (quorum)
router --publish--> inbeeld.delivery (direct) --<code>--> inbeeld.inbox.<code> (quorum)
rejected after the delivery limit --> inbeeld.dlx (fanout) --> inbeeld.dead (quorum)
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

INGRESS = "inbeeld.ingress"
ROUTER_QUEUE = "inbeeld.router"
DELIVERY = "inbeeld.delivery"
DLX = "inbeeld.dlx"
DEAD = "inbeeld.dead"
INBOX_PREFIX = "inbeeld.inbox."


def inbox_name(tenant_code: str) -> str:
    return f"{INBOX_PREFIX}{tenant_code}"


def _quorum_args(delivery_limit: int, max_length: int | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DLX,
    }
    if max_length is not None:
        # Back-pressure: a full inbox makes the broker nack the router's publish, and the
        # router answers the sender with hub.rejected `recipient_busy`.
        args["x-max-length"] = max_length
        args["x-overflow"] = "reject-publish"
    return args


async def declare_core(channel: AbstractChannel, delivery_limit: int) -> AbstractQueue:
    """Exchanges, the router queue and the dead-letter queue. Returns the router queue."""
    ingress = await channel.declare_exchange(INGRESS, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(DELIVERY, aio_pika.ExchangeType.DIRECT, durable=True)
    dlx = await channel.declare_exchange(DLX, aio_pika.ExchangeType.FANOUT, durable=True)
    dead = await channel.declare_queue(DEAD, durable=True, arguments={"x-queue-type": "quorum"})
    await dead.bind(dlx, routing_key="")
    router = await channel.declare_queue(ROUTER_QUEUE, durable=True, arguments=_quorum_args(delivery_limit))
    await router.bind(ingress, routing_key="#")
    return router


async def declare_inbox(
    channel: AbstractChannel, tenant_code: str, delivery_limit: int, max_length: int
) -> AbstractQueue:
    queue = await channel.declare_queue(
        inbox_name(tenant_code), durable=True, arguments=_quorum_args(delivery_limit, max_length)
    )
    await queue.bind(DELIVERY, routing_key=tenant_code)
    return queue
