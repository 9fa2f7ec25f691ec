"""The router against the real broker: routing, dedupe, groups, sequences, rejections."""

from __future__ import annotations

import json
import uuid

import pytest

from schemas.envelope import CloudEvent
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
    await hub.publish_raw("GM0599", b"\x00not json at all " + marker)
    den_haag = await hub.connector("GM0518")
    after = await den_haag.send(PING, {"text": "still alive?"}, ["GM0599"])
    await hub.receive("GM0599", lambda e: e.id == after.id)
    for _ in range(50):
        async with hub.db.session() as s:
            rows = [r for r in await s.scalars(select(DeadLetter)) if marker in r.body]
        if rows:
            break
        import asyncio

        await asyncio.sleep(0.1)
    assert rows and rows[0].reason == "envelope_invalid" and rows[0].sender == "GM0599"
