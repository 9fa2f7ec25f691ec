"""The broker topology of DESIGN section 4, declared idempotently.

tenant --publish(user_id)--> inbeeld.ingress (topic) --#--> inbeeld.router (quorum)
router --publish--> inbeeld.delivery (direct) --<code>--> inbeeld.inbox.<code>.<random> (quorum)
rejected after the delivery limit --> inbeeld.dlx (fanout) --> inbeeld.dead (quorum)

An inbox's name ends in 128 random bits: RabbitMQ checks no permission on a passive
`queue.declare`, so with a guessable name any tenant could learn another's message and
consumer counts (whether its connector is online). The tenant learns its own name from its
provisioning and from the hub API (`GET /tenants/me`); the router still addresses inboxes by
the binding's routing key, the tenant code, and never needs the name.

Each inbox has one active consumer (`x-single-active-consumer`): a second connector instance
of the same tenant waits as a standby and takes over when the first goes away, instead of
splitting the tenant's events with it.
"""

from __future__ import annotations

import secrets
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from schemas.names import DEAD, DELIVERY, DLX, INBOX_PREFIX, INGRESS, ROUTER_QUEUE

# The hub's modules take the topology's names from here; they are defined in schemas.names.
__all__ = [
    "DEAD",
    "DELIVERY",
    "DLX",
    "INBOX_PREFIX",
    "INBOX_RANDOM_BYTES",
    "INGRESS",
    "ROUTER_QUEUE",
    "declare_core",
    "declare_inbox",
    "inbox_args",
    "legacy_inbox_name",
    "new_inbox_name",
]


INBOX_RANDOM_BYTES = 16  # 128 bits: not guessable, not enumerable


def new_inbox_name(tenant_code: str) -> str:
    """A fresh, unguessable inbox name for `tenant_code` (stored with the tenant)."""
    return f"{INBOX_PREFIX}{tenant_code}.{secrets.token_urlsafe(INBOX_RANDOM_BYTES)}"


def legacy_inbox_name(tenant_code: str) -> str:
    """The guessable name inboxes had before migration 0007; only `inbox_migration` uses it."""
    return f"{INBOX_PREFIX}{tenant_code}"


def inbox_args(delivery_limit: int, max_length: int) -> dict[str, Any]:
    """The arguments of a tenant inbox; `inbeeld doctor` checks for exactly these."""
    return {**_quorum_args(delivery_limit, max_length), "x-single-active-consumer": True}


def _quorum_args(delivery_limit: int, max_length: int | None = None) -> dict[str, Any]:
    # On a cluster, RabbitMQ (3.10) gives a new quorum queue `quorum_cluster_size` members
    # (default 3) among its nodes: one node may go and a majority stays. No policy can set it
    # (`initial-cluster-size` is for streams only), and `x-quorum-initial-group-size` would
    # repeat the default while being compared on every re-declaration: existing queues would
    # refuse ours with 406 PRECONDITION_FAILED. So none is set; `inbeeld doctor` reports the
    # members and the docs say how to grow a queue declared before the cluster was complete.
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
    channel: AbstractChannel, name: str, tenant_code: str, delivery_limit: int, max_length: int
) -> AbstractQueue:
    """Declare the inbox `name` and bind it to the delivery exchange with the tenant's code."""
    queue = await channel.declare_queue(name, durable=True, arguments=inbox_args(delivery_limit, max_length))
    await queue.bind(DELIVERY, routing_key=tenant_code)
    return queue
