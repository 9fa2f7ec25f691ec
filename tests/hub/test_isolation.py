"""Tenant isolation, proven by trying to break it: every seed tenant attacks every other one
over AMQP with its own broker credentials, and the broker must refuse each attempt; a message
that borrows another tenant's `source` must be refused by the router.

How RabbitMQ 3.10 refuses (each refusal closes the channel, so every attempt gets a fresh one):
- a permission failure (queue/exchange/topic) closes the channel with 403 ACCESS_REFUSED
  -> aiormq.exceptions.ChannelAccessRefused; for a publish it surfaces while waiting for
  the publisher confirm;
- a `user_id` that is not the authenticated user closes it with 406 PRECONDITION_FAILED
  -> aiormq.exceptions.ChannelPreconditionFailed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import ChannelAccessRefused, ChannelNotFoundEntity, ChannelPreconditionFailed
from sqlalchemy import select

from hub import registry
from hub.broker.topology import DELIVERY, INBOX_RANDOM_BYTES, INGRESS, legacy_inbox_name, new_inbox_name
from hub.store.models import LedgerEvent
from schemas.envelope import CloudEvent
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

SEED = ("GM0518", "GM0599", "GM0307", "GM0957", "ingrado")
PING = "nl.leerplicht.ping"

Op = Callable[[AbstractChannel], Awaitable[object]]


async def ignore(message: object) -> None:
    pass


@dataclass(frozen=True)
class Outcome:
    attacker: str
    victim: str
    attack: str
    expected: type[BaseException]
    got: BaseException | None

    @property
    def refused(self) -> bool:
        return isinstance(self.got, self.expected)

    def __str__(self) -> str:
        got = "ALLOWED" if self.got is None else f"{type(self.got).__name__} {str(self.got)[:80]}"
        return f"{self.attacker} -> {self.victim}: {self.attack}: {got}, want {self.expected.__name__}"


def attacks(hub: RunningHub, a: str, b: str) -> list[tuple[str, Op, type[BaseException]]]:
    """What tenant `a` tries against tenant `b`, even knowing b's (unguessable) inbox name."""
    victim_inbox = hub.inbox(b)
    victim_user = hub.creds[b].username

    def msg(user_id: str) -> aio_pika.Message:
        return aio_pika.Message(b"{}", user_id=user_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)

    async def consume(ch: AbstractChannel) -> object:
        return await (await ch.get_queue(victim_inbox, ensure=False)).consume(ignore)

    async def get(ch: AbstractChannel) -> object:
        return await (await ch.get_queue(victim_inbox, ensure=False)).get(fail=False)

    async def purge(ch: AbstractChannel) -> object:
        return await (await ch.get_queue(victim_inbox, ensure=False)).purge()

    async def delete(ch: AbstractChannel) -> object:
        return await ch.queue_delete(victim_inbox)

    async def redeclare(ch: AbstractChannel) -> object:
        return await ch.declare_queue(victim_inbox, durable=True, arguments={"x-queue-type": "quorum"})

    async def declare_copy(ch: AbstractChannel) -> object:
        return await ch.declare_queue(f"{victim_inbox}.copy", auto_delete=True)

    async def bind_own_to_delivery(ch: AbstractChannel) -> object:
        return await (await ch.get_queue(hub.inbox(a), ensure=False)).bind(DELIVERY, routing_key=b)

    async def bind_victim_to_ingress(ch: AbstractChannel) -> object:
        return await (await ch.get_queue(victim_inbox, ensure=False)).bind(INGRESS, routing_key="#")

    async def publish_delivery(ch: AbstractChannel) -> object:
        ex = await ch.get_exchange(DELIVERY, ensure=False)
        return await ex.publish(msg(hub.creds[a].username), routing_key=b)

    async def publish_default(ch: AbstractChannel) -> object:
        return await ch.default_exchange.publish(msg(hub.creds[a].username), routing_key=victim_inbox)

    async def publish_as_victim(ch: AbstractChannel) -> object:
        ex = await ch.get_exchange(INGRESS, ensure=False)
        return await ex.publish(msg(victim_user), routing_key=PING)

    return [
        ("consume the victim's inbox", consume, ChannelAccessRefused),
        ("basic.get from the victim's inbox", get, ChannelAccessRefused),
        ("purge the victim's inbox", purge, ChannelAccessRefused),
        ("delete the victim's inbox", delete, ChannelAccessRefused),
        ("re-declare the victim's inbox", redeclare, ChannelAccessRefused),
        ("declare a queue", declare_copy, ChannelAccessRefused),
        (
            "bind own inbox to inbeeld.delivery with the victim's key",
            bind_own_to_delivery,
            ChannelAccessRefused,
        ),
        ("bind the victim's inbox to inbeeld.ingress", bind_victim_to_ingress, ChannelAccessRefused),
        ("publish to inbeeld.delivery", publish_delivery, ChannelAccessRefused),
        ("publish to the default exchange", publish_default, ChannelAccessRefused),
        ("publish with the victim's user_id", publish_as_victim, ChannelPreconditionFailed),
    ]


async def attempt(conn: AbstractConnection, op: Op) -> BaseException | None:
    channel = await conn.channel(publisher_confirms=True)
    try:
        await asyncio.wait_for(op(channel), 10)
    except Exception as exc:
        return exc
    finally:
        if not channel.is_closed:
            await channel.close()
    return None


async def broker_matrix(hub: RunningHub) -> list[Outcome]:
    outcomes = []
    for a in SEED:
        conn = await aio_pika.connect(hub.tenant_url(a))
        try:
            for b in SEED:
                if b == a:
                    continue
                for name, op, expected in attacks(hub, a, b):
                    outcomes.append(Outcome(a, b, name, expected, await attempt(conn, op)))
        finally:
            await conn.close()
    return outcomes


class SourceRefused(Exception):
    """Stands for the router's hub.rejected `source_mismatch`, to fit the matrix."""


async def source_matrix(hub: RunningHub) -> list[Outcome]:
    """A claims B's `source`: A gets hub.rejected source_mismatch, B gets nothing."""
    async with hub.db.session() as s:
        prefixes = {t.code: t.source_prefix for t in await registry.list_tenants(s) if t.code in SEED}
    outcomes = []
    for a in SEED:
        connector = await hub.connector(a)
        forged = {
            b: await connector.publish(
                CloudEvent(source=prefixes[b] + "leerplicht", type=PING, recipients=[b], data={"text": "x"})
            )
            for b in SEED
            if b != a
        }
        ids = {e.id: b for b, e in forged.items()}
        rejections = await hub.receive(
            a, lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] in ids, count=len(ids)
        )
        reasons = {ids[r.data["event_id"]]: r.data["reason"] for r in rejections}
        async with hub.db.session() as s:
            rows = {
                r.event_id: r
                for r in await s.scalars(select(LedgerEvent).where(LedgerEvent.event_id.in_(ids)))
            }
        for event_id, b in ids.items():
            # refused before it is recorded: a forged event occupies nothing in the ledger
            refused = reasons.get(b) == "source_mismatch" and event_id not in rows
            outcomes.append(
                Outcome(
                    a, b, "claim the victim's source", SourceRefused, SourceRefused() if refused else None
                )
            )
    return outcomes


async def test_isolation_matrix(hub: RunningHub, capsys: pytest.CaptureFixture[str]) -> None:
    outcomes = await broker_matrix(hub) + await source_matrix(hub)
    refused = sum(o.refused for o in outcomes)
    with capsys.disabled():
        print(f"\nisolation matrix ({hub.settings.vhost}): {len(outcomes)} attempts, {refused} refused")
    pairs = len(SEED) * (len(SEED) - 1)
    assert len(outcomes) == pairs * (len(attacks(hub, "GM0518", "GM0599")) + 1)
    holes = [str(o) for o in outcomes if not o.refused]
    assert not holes, "isolation broken:\n" + "\n".join(holes)


async def test_own_credentials_still_work_after_the_attacks(hub: RunningHub) -> None:
    """The control: refusals are not a broken login; each tenant reads its inbox and sends."""
    for a in SEED:
        b = SEED[(SEED.index(a) + 1) % len(SEED)]
        sent = await (await hub.connector(a)).send(PING, {"text": f"control {a}"}, [b])
        await hub.receive(b, lambda e, i=sent.id: e.id == i)


def not_found_text(error: BaseException | None, name: str) -> str:
    """The broker's refusal with the queue's name taken out, to compare two refusals."""
    assert isinstance(error, ChannelNotFoundEntity), f"{name}: {error!r}"
    return str(error).replace(name, "<queue>")


async def test_passive_declare_cannot_find_another_tenants_inbox(hub: RunningHub) -> None:
    """RabbitMQ checks no permission on a passive queue.declare, so with guessable inbox names
    any tenant learned another inbox's message and consumer counts (whether its connector is
    online). Inboxes now end in 128 random bits: every guess at GM0599's inbox gets NOT_FOUND,
    exactly like a queue that does not exist, while GM0518 still sees its own."""
    victim = hub.inbox("GM0599")
    guesses = [
        legacy_inbox_name("GM0599"),  # the old, guessable name
        new_inbox_name("GM0599"),  # the right shape, another random part
        victim[:-1],  # all but one character
        victim.upper(),
    ]
    nothing = f"{legacy_inbox_name('GM0599')}.does-not-exist"
    conn = await aio_pika.connect(hub.tenant_url("GM0518"))
    try:
        error = await attempt(conn, lambda ch: ch.declare_queue(nothing, passive=True))
        baseline = not_found_text(error, nothing)
        for guess in guesses:
            error = await attempt(conn, lambda ch, g=guess: ch.declare_queue(g, passive=True))
            assert not_found_text(error, guess) == baseline
        own = await conn.channel()
        declared = await own.declare_queue(hub.inbox("GM0518"), passive=True)  # the control
        assert declared.declaration_result.consumer_count >= 0
        await own.close()
    finally:
        await conn.close()
    names = {code: hub.inbox(code) for code in SEED}
    assert len(set(names.values())) == len(SEED)
    for code, name in names.items():
        random_part = name.removeprefix(legacy_inbox_name(code) + ".")
        assert random_part != name and len(random_part) >= INBOX_RANDOM_BYTES * 4 // 3, name
