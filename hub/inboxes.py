"""A tenant's inbox on the broker: naming it, declaring it, and moving an old-style one.

An inbox is `inbeeld.inbox.<code>.<random>` (hub.broker.topology.new_inbox_name), its name
stored with the tenant. Until migration 0007 inboxes were `inbeeld.inbox.<code>`, which any
tenant could find with a passive `queue.declare`. `ensure_inbox` gives a tenant its new inbox
and drains an old one into it without losing a message and without a shovel:

1. the new inbox is declared and bound (the name is committed first, so a message moved into
   it is never in a queue nobody knows);
2. the tenant's read permission moves to the new inbox and its open connections are closed
   (a channel keeps its permission checks), so a consumer of the old inbox stops and what it
   had not acknowledged returns to the queue;
3. the old inbox is unbound, so the router's publishes reach only the new one (for a moment
   both are bound: a copy may be in both, and the connector drops the duplicate);
4. every message left in the old inbox is republished to the new one, confirmed, and only
   then acknowledged;
5. the old inbox is deleted only when it is empty (checked here: quorum queues do not support
   `if-empty`); otherwise it stays, and running this again finishes the job.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from hub import registry
from hub.broker.management import Management
from hub.broker.topology import DELIVERY, declare_inbox, legacy_inbox_name, new_inbox_name
from hub.config import Settings
from hub.provisioning import grant
from hub.store.db import Database
from schemas.errors import InbeeldError

log = structlog.get_logger("inbeeld.inboxes")


class InboxMoveError(InbeeldError):
    """Moving an old-style inbox stopped part-way; nothing is lost (an unconfirmed message stays
    in the old inbox) and running `inbeeld migrate` again carries on."""

    reason = "inbox_move_failed"


# Headers the broker writes itself; a moved message starts afresh in its new queue.
_BROKER_HEADERS = frozenset(
    {"x-delivery-count", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"}
)


@dataclass(frozen=True)
class InboxOutcome:
    tenant: str
    inbox: str
    moved: int = 0  # messages moved from the old-style inbox
    legacy_left: bool = False  # the old-style inbox still exists (not empty): run again


@dataclass(frozen=True)
class InboxStats:
    messages: int  # waiting (the management API's figure, a few seconds old)
    consumers: int  # a connector is online when this is above 0


async def stats(mgmt: Management, vhost: str) -> dict[str, InboxStats]:
    """Every queue of the deployment with its depth and consumers, by name, in one call."""
    return {
        q["name"]: InboxStats(int(q.get("messages") or 0), int(q.get("consumers") or 0))
        for q in await mgmt.list_queues(vhost)
        if isinstance(q.get("name"), str)
    }


async def assign_inbox(db: Database, tenant_code: str) -> str:
    """The tenant's inbox name, choosing and committing a new one if it has none."""
    async with db.session() as s, s.begin():
        tenant = await registry.get_tenant(s, tenant_code)
        if tenant.inbox is not None:
            return tenant.inbox
        name = new_inbox_name(tenant.code)
        await registry.set_inbox(s, tenant.code, name)
        return name


async def ensure_inbox(
    db: Database, mgmt: Management, channel: AbstractChannel, settings: Settings, tenant_code: str
) -> InboxOutcome:
    """Give the tenant its (unguessable, single-active-consumer) inbox, bound to the delivery
    exchange, and move an old-style inbox's messages into it. Idempotent. `channel` must have
    publisher confirms (aio-pika's default)."""
    name = await assign_inbox(db, tenant_code)
    if await mgmt.queue(settings.vhost, name) is None:
        await declare_inbox(channel, name, tenant_code, settings.delivery_limit, settings.inbox_max_length)
    else:  # not re-declared: changed settings must not make an existing inbox fail the run
        await (await channel.get_queue(name, ensure=False)).bind(DELIVERY, routing_key=tenant_code)
    legacy = legacy_inbox_name(tenant_code)
    if await mgmt.queue(settings.vhost, legacy) is None:
        return InboxOutcome(tenant_code, name)
    async with db.session() as s:
        tenant = await registry.get_tenant(s, tenant_code)
    if tenant.broker_username is not None:
        if tenant.active:
            await grant(mgmt, settings, tenant.broker_username, inbox=name)
        await _disconnect(mgmt, tenant.broker_username, settings.publish_timeout)
    old = await channel.get_queue(legacy, ensure=False)
    await old.unbind(DELIVERY, routing_key=tenant_code)
    moved = await _move(channel, legacy, name, settings)
    left = not await _delete_if_empty(channel, legacy)
    log.info("inbox.migrated", tenant=tenant_code, moved=moved, legacy_left=left)
    return InboxOutcome(tenant_code, name, moved, left)


async def _delete_if_empty(channel: AbstractChannel, name: str) -> bool:
    """Delete the drained old inbox if no message is left in it.

    Quorum queues refuse `queue.delete` with `if-empty`, so the check is ours: the queue is
    unbound and the tenant's consumers on it are gone (`_disconnect`) and may not come back,
    so nothing can arrive or be held between the check and the delete (only the hub's own
    user could still publish to it)."""
    declared = await channel.declare_queue(name, passive=True)
    if declared.declaration_result.message_count:
        return False
    await channel.queue_delete(name)
    return True


async def _disconnect(mgmt: Management, user: str, timeout: float) -> None:
    """Close the tenant's current connections and wait until the broker's connection tracking
    no longer lists them: their consumers on the old inbox are then gone, and what those held
    unacknowledged is back in the queue to be moved. A channel keeps its permission checks,
    so only this makes the old inbox unreadable; a connection opened after the grant cannot
    read it. (The consumer count a passive declare of a quorum queue reports can lag behind
    a forced close, so it is not used here.)"""
    before = {str(c.get("name")) for c in await mgmt.connections_of(user)}
    if not before:
        return
    await mgmt.drop_connections(user, "inbox moved; reconnect")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while before & {str(c.get("name")) for c in await mgmt.connections_of(user)}:
        if loop.time() > deadline:
            raise InboxMoveError("the tenant's connections to its old inbox did not close")
        await asyncio.sleep(0.05)


async def _move(channel: AbstractChannel, source: str, target: str, settings: Settings) -> int:
    """Republish every ready message of `source` to `target`: confirmed first, then acked."""
    queue = await channel.get_queue(source, ensure=False)
    moved, looked_again = 0, False
    while True:
        message = await queue.get(no_ack=False, fail=False, timeout=settings.publish_timeout)
        if message is None:
            if looked_again:
                return moved
            # Messages a closed consumer held come back through the queue's log: give a
            # straggler a moment before calling the queue drained.
            looked_again = True
            await asyncio.sleep(0.5)
            continue
        looked_again = False
        try:
            copy = _copy(message, settings)
            await asyncio.wait_for(
                channel.default_exchange.publish(copy, routing_key=target, mandatory=True),
                settings.publish_timeout,
            )
        except (aio_pika.exceptions.DeliveryError, TimeoutError) as exc:
            # Not confirmed (e.g. the new inbox is full): the message stays in the old inbox.
            raise InboxMoveError(
                f"the new inbox refused a message ({type(exc).__name__}) after {moved} were moved; "
                "the rest stay in the old inbox: run `inbeeld migrate` again"
            ) from None
        await message.ack()
        moved += 1


def _copy(message: AbstractIncomingMessage, settings: Settings) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _BROKER_HEADERS}
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        # The broker refuses a user_id that is not the publisher's own: keep the router's
        # stamp when we are the router's user, drop it otherwise (connectors do not read it).
        user_id=message.user_id if message.user_id == settings.amqp_user else None,
        app_id=message.app_id,
    )


async def migrate_all(
    db: Database, mgmt: Management, channel: AbstractChannel, settings: Settings
) -> list[InboxOutcome]:
    """`inbeeld migrate`: every provisioned tenant gets its new inbox; old ones are drained.
    A tenant never provisioned (no broker user, no inbox) is left to `tenant provision`."""
    async with db.session() as s:
        tenants = await registry.list_tenants(s)
    outcomes = []
    for t in tenants:
        if t.broker_username is None and t.inbox is None:
            continue
        try:
            outcomes.append(await ensure_inbox(db, mgmt, channel, settings, t.code))
        except InboxMoveError as exc:
            raise InboxMoveError(f"tenant {t.code}: {exc.message}") from None
        except aio_pika.exceptions.AMQPError as exc:
            raise InboxMoveError(
                f"tenant {t.code}: the broker stopped the inbox move ({type(exc).__name__}); "
                "nothing unconfirmed was removed: run `inbeeld migrate` again"
            ) from None
    return outcomes
