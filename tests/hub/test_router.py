"""The router against the real broker: routing, dedupe, groups, sequences, rejections."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from hub import ledger
from hub.store.models import DeadLetter, LedgerEvent
from schemas.envelope import CloudEvent
from schemas.events import Ping
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

PING = "nl.leerplicht.ping"


def is_rejection_of(event_id: str):
    return lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] == event_id


async def test_ping_reaches_its_recipient(hub: RunningHub) -> None:
    den_haag = await hub.connector("GM0518")
    sent = await den_haag.send(PING, {"text": "hallo Rotterdam"}, ["GM0599"])
    [got] = await hub.receive("GM0599", lambda e: e.id == sent.id)
    assert got.data == {"text": "hallo Rotterdam"}
    assert got.source == sent.source and got.sequence is not None


async def test_duplicate_is_delivered_once(hub: RunningHub) -> None:
    den_haag = await hub.connector("GM0518")
    event = den_haag.event(PING, {"text": "twice"}, ["GM0307"])
    await den_haag.publish(event)
    await den_haag.publish(event)
    marker = await den_haag.send(PING, {"text": "after"}, ["GM0307"])
    got = await hub.receive("GM0307", lambda e: e.id in (event.id, marker.id), count=2)
    assert [e.id for e in got] == [event.id, marker.id]
    leftovers = await hub.drain("GM0307")
    assert event.id not in {e.id for e in leftovers}


async def test_group_reaches_every_member_once_with_gap_free_sequences(hub: RunningHub) -> None:
    rotterdam = await hub.connector("GM0599")
    await hub.drain("GM0518")
    sent = [await rotterdam.send(PING, {"text": f"n{i}"}, ["group:landelijk"]) for i in range(20)]
    ids = {e.id for e in sent}
    for code in ("GM0518", "GM0307", "GM0957", "ingrado"):
        got = await hub.receive(code, lambda e: e.id in ids, count=len(sent))
        assert sorted(e.id for e in got) == sorted(ids)  # each once
        seqs = [e.sequence for e in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(sent))), f"gap in {code}: {seqs}"
    assert not [e for e in await hub.drain("GM0599") if e.id in ids]  # not back to the sender


@pytest.mark.parametrize(
    ("reason", "make"),
    [
        ("unknown_type", lambda c: c.event("nl.leerplicht.pupil.teleported", {}, ["GM0599"])),
        ("unknown_recipient", lambda c: c.event(PING, {"text": "x"}, ["GM9999"])),
        ("unknown_recipient", lambda c: c.event(PING, {"text": "x"}, ["group:nowhere"])),
        ("not_authorised", lambda c: c.event("nl.leerplicht.hub.receipt", {}, ["GM0599"])),
        ("schema_invalid", lambda c: c.event(PING, {"text": "x" * 500}, ["GM0599"])),
        ("schema_invalid", lambda c: c.event(PING, {"colour": "blue"}, ["GM0599"])),
    ],
)
async def test_refusals_answer_the_sender(hub: RunningHub, reason: str, make) -> None:
    den_haag = await hub.connector("GM0518")
    event = await den_haag.publish(make(den_haag))
    [rejection] = await hub.receive("GM0518", is_rejection_of(event.id))
    assert rejection.data["reason"] == reason
    assert rejection.data["message"]
    assert rejection.source == hub.settings.hub_source


async def test_association_may_not_offer_a_transfer(hub: RunningHub) -> None:
    ingrado = await hub.connector("ingrado")
    event = await ingrado.publish(ingrado.event("nl.leerplicht.transfer.offered", {"jws": "x"}, ["GM0599"]))
    [rejection] = await hub.receive("ingrado", is_rejection_of(event.id))
    assert rejection.data["reason"] == "not_authorised"


async def test_source_of_another_tenant_is_refused(hub: RunningHub) -> None:
    den_haag = await hub.connector("GM0518")
    forged = CloudEvent(
        source="urn:nld:cbs:GM0599:systeem:leerplicht",
        type=PING,
        recipients=["GM0307"],
        data={"text": "I am Rotterdam"},
    )
    await den_haag.publish(forged)
    [rejection] = await hub.receive("GM0518", is_rejection_of(forged.id))
    assert rejection.data["reason"] == "source_mismatch"
    assert not [e for e in await hub.drain("GM0307") if e.id == forged.id]


async def test_envelope_invalid_and_too_large(hub: RunningHub) -> None:
    event_id = str(uuid.uuid4())
    await hub.publish_raw("GM0518", json.dumps({"specversion": "1.0", "id": event_id, "type": PING}).encode())
    [rejection] = await hub.receive("GM0518", is_rejection_of(event_id))
    assert rejection.data["reason"] == "envelope_invalid"
    assert "source" in rejection.data["message"]

    big_id = str(uuid.uuid4())
    big = json.dumps({"id": big_id, "pad": "x" * 1_100_000}).encode()
    await hub.publish_raw("GM0518", big)
    [rejection] = await hub.receive("GM0518", is_rejection_of(big_id))
    assert rejection.data["reason"] == "too_large"


async def test_unparseable_body_is_dead_lettered_and_router_keeps_running(hub: RunningHub) -> None:
    from sqlalchemy import select

    from hub.store.models import DeadLetter

    marker = uuid.uuid4().hex.encode()
    body = b"\x00not json at all " + marker
    digest = hashlib.sha256(body).hexdigest()
    await hub.publish_raw("GM0599", body)
    den_haag = await hub.connector("GM0518")
    after = await den_haag.send(PING, {"text": "still alive?"}, ["GM0599"])
    await hub.receive("GM0599", lambda e: e.id == after.id)
    for _ in range(50):
        async with hub.db.session() as s:
            rows = [r for r in await s.scalars(select(DeadLetter)) if r.body_sha256 == digest]
        if rows:
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert rows and rows[0].reason == "envelope_invalid" and rows[0].sender == "GM0599"
    # not a signed or sealed event: only its size and digest are kept, never the bytes
    assert rows[0].body == b"" and rows[0].body_size == len(body)


async def test_routed_messages_are_acked_and_marked_routed(hub: RunningHub) -> None:
    """Every copy confirmed -> the ingress message acked (nothing left unacked to redeliver)."""
    den_haag = await hub.connector("GM0518")
    before = hub.router.handled
    sent = [await den_haag.send(PING, {"text": f"ack {i}"}, ["GM0599", "GM0307"]) for i in range(30)]
    ids = {e.id for e in sent}
    await hub.receive("GM0599", lambda e: e.id in ids, count=len(sent))
    for _ in range(100):  # the acks follow the confirms, a moment after the copies arrive
        if hub.router.handled - before >= len(sent):
            break
        await asyncio.sleep(0.05)
    assert hub.router.handled - before >= len(sent)
    async with hub.db.session() as s:
        statuses = set(await s.scalars(select(LedgerEvent.status).where(LedgerEvent.event_id.in_(ids))))
    assert statuses == {ledger.ROUTED}


async def test_a_redelivered_routed_event_publishes_its_stored_copies_again(hub: RunningHub) -> None:
    """The crash window: routed in the store, copies maybe not published, message not acked.
    The broker redelivers it; the router repeats the same copies with the same sequences."""
    den_haag = await hub.connector("GM0518")
    sent = await den_haag.send(PING, {"text": "repeat me"}, ["GM0957"])
    [first] = await hub.receive("GM0957", lambda e: e.id == sent.id)
    tenant = await hub.router._directory.tenant("GM0518")
    assert tenant is not None
    async with hub.db.session() as s, s.begin():
        [rec] = await ledger.record_many(s, [(sent, "GM0518", 100)])
        assert not rec.is_new and rec.status == ledger.ROUTED
        fresh = await hub.router.decider.decide(s, tenant, sent, rec, redelivered=False)
        again = await hub.router.decider.decide(s, tenant, sent, rec, redelivered=True)
        assert fresh is None  # a sender's resend is a duplicate
        assert again is not None and again.repeat
        await ledger.assign_many(s, [again.allocation])
    assert again.allocation.seqs == {"GM0957": first.sequence}


async def test_the_router_consumes_again_after_its_channel_is_reopened(hub: RunningHub) -> None:
    """The router consumes on the AMQP channel under aio-pika's robust one; when that channel
    dies (here: closed under it), the robust channel re-opens and the router consumes again."""
    den_haag = await hub.connector("GM0518")
    old = hub.router._amqp
    assert old is not None
    await old.close()
    for _ in range(100):
        if hub.router._amqp is not None and hub.router._amqp is not old:
            break
        await asyncio.sleep(0.05)
    assert hub.router._amqp is not old and not hub.router._amqp.is_closed
    sent = await den_haag.send(PING, {"text": "after the reopen"}, ["GM0599"])
    [got] = await hub.receive("GM0599", lambda e: e.id == sent.id)
    assert got.data == {"text": "after the reopen"}


class _FaultyPings:
    """A workflow for pings that fails, for one event id, the first `times` times it is
    consulted: with `fault`, an exception class or instance raised inside the router's
    transaction. Counts how often it was consulted."""

    prefixes = ("ping",)

    def __init__(self, event_id: str, fault: BaseException, times: int) -> None:
        self.event_id, self.fault, self.left, self.calls = event_id, fault, times, 0

    async def check(self, s, sender, verified, recipients):
        if verified.event.id != self.event_id:
            return recipients
        self.calls += 1
        assert verified.payload_as(Ping).text  # a plain event arrives validated
        if self.left > 0:
            self.left -= 1
            raise self.fault
        return recipients

    async def record(self, s, sender, verified, recipients) -> None:
        return None

    async def sweep(self, s, now):
        return []


def _counted(outcome: str) -> float:
    labels = {"type": PING, "outcome": outcome, "reason": ""}
    return REGISTRY.get_sample_value("inbeeld_router_events_total", labels) or 0.0


def _store_lost() -> OperationalError:
    """What SQLAlchemy raises when the database connection drops mid-transaction."""
    return OperationalError("SELECT 1", {}, ConnectionResetError("server closed the connection"))


async def test_the_store_briefly_away_is_retried_and_the_event_routed_once(hub: RunningHub) -> None:
    """The store adapter turns a lost connection into Transient: the router keeps the message,
    tries again, and routes it once (no rejection, no dead letter)."""
    den_haag = await hub.connector("GM0518")
    event = den_haag.event(PING, {"text": "store away"}, ["GM0599"])
    faulty = _FaultyPings(event.id, _store_lost(), times=2)
    hub.router.workflows.insert(0, faulty)
    try:
        dead_before = await _dead_letters_of(hub, "GM0518")
        counted_before = {o: _counted(o) for o in ("received", "routed")}
        await den_haag.publish(event)
        [got] = await hub.receive("GM0599", lambda e: e.id == event.id, timeout=30)
    finally:
        hub.router.workflows.remove(faulty)
    assert got.data == {"text": "store away"}
    assert faulty.calls == 3  # two failures, then routed
    # inbeeld_router_events_total counts the retried batch once
    assert {o: _counted(o) - n for o, n in counted_before.items()} == {"received": 1, "routed": 1}
    marker = await den_haag.send(PING, {"text": "after"}, ["GM0599"])
    later = await hub.receive("GM0599", lambda e: e.id == marker.id)
    assert event.id not in {e.id for e in later + await hub.drain("GM0599")}  # once
    assert not [e for e in await hub.drain("GM0518") if is_rejection_of(event.id)(e)]
    async with hub.db.session() as s:
        rows = list(await s.scalars(select(LedgerEvent).where(LedgerEvent.event_id == event.id)))
    assert [r.status for r in rows] == [ledger.ROUTED]
    assert (await _dead_letters_of(hub, "GM0518")).keys() == dead_before.keys()  # none new


async def _dead_letters_of(hub: RunningHub, sender: str) -> dict[int, DeadLetter]:
    async with hub.db.session() as s:
        return {d.id: d for d in await s.scalars(select(DeadLetter).where(DeadLetter.sender == sender))}


async def test_a_runtime_error_is_a_bug_dead_lettered_not_retried_for_ever(hub: RunningHub) -> None:
    """A RuntimeError is not transient: the router nacks it as a bug and the queue's delivery
    limit dead-letters it after a few attempts; nobody receives it and it is not retried on."""
    den_haag = await hub.connector("GM0518")
    event = den_haag.event(PING, {"text": "a bug"}, ["GM0307"])
    faulty = _FaultyPings(event.id, RuntimeError("simulated bug"), times=1_000)
    hub.router.workflows.insert(0, faulty)
    try:
        before = await _dead_letters_of(hub, "GM0518")
        await den_haag.publish(event)
        new: list[DeadLetter] = []
        for _ in range(150):
            new = [d for i, d in (await _dead_letters_of(hub, "GM0518")).items() if i not in before]
            if new:
                break
            await asyncio.sleep(0.2)
        calls = faulty.calls
        await asyncio.sleep(1.0)  # nothing consults it any more
        assert faulty.calls == calls
    finally:
        hub.router.workflows.remove(faulty)
    [dead] = new
    assert dead.reason == "delivery_limit"
    assert 1 <= calls <= hub.settings.delivery_limit + 1
    assert not [e for e in await hub.drain("GM0307") if e.id == event.id]
    assert not [e for e in await hub.drain("GM0518") if is_rejection_of(event.id)(e)]
