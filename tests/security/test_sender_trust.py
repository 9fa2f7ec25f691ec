"""A tenant attacks with its own broker credentials: forged dead-letter headers replayed by the
operator, a body nested too deep, event ids occupied with forged events, a BSN in the
envelope, messages without a sender, a flood. Each attack is refused with its reason code,
nothing reaches anyone, and nothing is recorded under the victim's name."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from hub.api.app import create_app
from hub.rate_limit import RateLimiter
from hub.router import Router
from hub.store.models import AuditRecord, DeadLetter, LedgerEvent
from schemas.envelope import CloudEvent
from tests.conftest import BACKENDS, RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

PING = "nl.leerplicht.ping"
REJECTED = "nl.leerplicht.hub.rejected"
ATTACKER, VICTIM, BYSTANDER = "GM0307", "GM0518", "GM0599"
JOSE_SHAPED = {"protected": "eyJhbGciOiJFZERTQSJ9", "payload": "e30", "signature": "AAAA"}


def rejection_of(event_id: str):
    return lambda e: e.type == REJECTED and e.data["event_id"] == event_id


async def source_of(hub: RunningHub, code: str) -> str:
    return (await hub.connector(code)).source


def forged(source: str, event_type: str, data: Any, to: list[str], **attrs: Any) -> CloudEvent:
    return CloudEvent(source=source, type=event_type, recipients=to, data=data, **attrs)


async def publish_as(hub: RunningHub, code: str, body: bytes, **properties: Any) -> None:
    """Publish `body` to the ingress with `code`'s own broker credentials and user_id."""
    conn = await aio_pika.connect(hub.tenant_url(code))
    try:
        channel = await conn.channel(publisher_confirms=True)
        ingress = await channel.get_exchange("inbeeld.ingress", ensure=False)
        properties.setdefault("user_id", hub.creds[code].username)
        await ingress.publish(aio_pika.Message(body, **properties), routing_key=PING)
    finally:
        await conn.close()


async def ledger_rows(hub: RunningHub, **where: Any) -> list[LedgerEvent]:
    async with hub.db.session() as s:
        q = select(LedgerEvent)
        for column, value in where.items():
            q = q.where(getattr(LedgerEvent, column) == value)
        return list(await s.scalars(q))


async def audit_count(hub: RunningHub, sender: str) -> int:
    async with hub.db.session() as s:
        return int(
            await s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.sender == sender))
            or 0
        )


async def wait_for_dead(hub: RunningHub, digest: str, timeout: float = 20.0) -> DeadLetter:
    for _ in range(int(timeout / 0.1)):
        async with hub.db.session() as s:
            row = await s.scalar(select(DeadLetter).where(DeadLetter.body_sha256 == digest))
        if row is not None:
            return row
        await asyncio.sleep(0.1)
    raise AssertionError("the message was not filed as a dead letter")


def api_for(hub: RunningHub) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub.settings, hub.db)), base_url="http://hub"
    )


# -- 1. sender spoofing through an operator replay -----------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
async def own_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningHub]:
    """A hub of this module's own: the spoofing test stops and restarts its router."""
    backend = request.param
    label = f"trust_{backend}"
    settings = base_settings(
        vhost=f"inbeeld-trust-{RUN_ID}-{backend}",
        database_url=await make_database_url(backend, label, tmp_path_factory.mktemp("trust")),
    )
    async with private_hub(settings, backend, label) as hub:
        yield hub


async def test_forged_dead_letter_headers_do_not_make_the_victim_the_sender(own_hub: RunningHub) -> None:
    hub = own_hub
    victim_source = await source_of(hub, VICTIM)
    forged_headers = {
        "x-inbeeld-sender": VICTIM,
        "x-inbeeld-reason": "envelope_invalid",
        "x-inbeeld-detail": "looks like the hub wrote this",
    }
    signed_like = forged(victim_source, "nl.leerplicht.notice.pupil_missing", JOSE_SHAPED, [BYSTANDER])
    plain = forged(victim_source, PING, {"text": "from the victim, honestly"}, [BYSTANDER])
    ledger_before = len(await ledger_rows(hub, sender=VICTIM))
    audit_before = await audit_count(hub, VICTIM)

    # The router is down (or busy): the attacker's messages expire in its queue and the broker
    # dead-letters them, headers and all.
    await hub.router.stop()
    for event in (signed_like, plain):
        await publish_as(hub, ATTACKER, event.to_bytes(), headers=forged_headers, expiration=0.2)
    await asyncio.sleep(1.0)
    hub.router = Router(hub.settings, hub.db)
    await hub.router.start()

    rows = [await wait_for_dead(hub, hashlib.sha256(e.to_bytes()).hexdigest()) for e in (signed_like, plain)]
    for row in rows:
        assert row.sender == ATTACKER  # the broker-validated user, not the header
        assert row.reason == "expired" and row.detail == ""
        assert not any(k.startswith("x-inbeeld-") for k in row.headers)
    kept, dropped = rows
    assert kept.body == signed_like.to_bytes()  # a JOSE-shaped event: replayable
    assert dropped.body == b"" and dropped.body_size == len(plain.to_bytes())  # readable: not kept

    async with api_for(hub) as api:
        operator = {"Authorization": f"Bearer {await hub.token('operator')}"}
        victim = {"Authorization": f"Bearer {await hub.token('tenant', VICTIM)}"}
        attacker = {"Authorization": f"Bearer {await hub.token('tenant', ATTACKER)}"}
        ids = {r.id for r in rows}
        assert not ids & {d["id"] for d in (await api.get("/dead-letters", headers=victim)).json()}
        assert ids <= {d["id"] for d in (await api.get("/dead-letters", headers=attacker)).json()}

        # The operator replays: the router checks the source against the dead letter's sender
        # exactly as for a fresh event.
        replay = await api.post(f"/dead-letters/{kept.id}/replay", headers=operator)
        assert replay.status_code == 202, replay.text
        [rejection] = await hub.receive(ATTACKER, rejection_of(signed_like.id))
        assert rejection.data["reason"] == "source_mismatch"
        refused = await api.post(f"/dead-letters/{dropped.id}/replay", headers=operator)
        assert refused.status_code == 400 and refused.json()["reason"] == "replay_refused"

    assert not [e for e in await hub.drain(BYSTANDER) if e.id in {signed_like.id, plain.id}]
    assert len(await ledger_rows(hub, sender=VICTIM)) == ledger_before
    assert await audit_count(hub, VICTIM) == audit_before
    assert not await ledger_rows(hub, event_id=signed_like.id)  # refused before it was recorded


# -- 2. a body nested too deep -----------------------------------------------------------------


async def test_a_deeply_nested_body_is_refused_once_without_looping(hub: RunningHub) -> None:
    depth = 5000
    body = b'{"id":"deep-' + uuid.uuid4().hex[:8].encode() + b'","data":' + b"[" * depth + b"]" * depth + b"}"
    digest = hashlib.sha256(body).hexdigest()
    await publish_as(hub, ATTACKER, body)
    row = await wait_for_dead(hub, digest)
    # dead-lettered by the router itself at once (its reason), not by the broker after the
    # router failed on it delivery-limit times
    assert row.reason == "too_deep" and row.sender == ATTACKER and row.body == b""
    async with hub.db.session() as s:
        assert (
            await s.scalar(
                select(func.count()).select_from(DeadLetter).where(DeadLetter.body_sha256 == digest)
            )
            == 1
        )
    sent = await (await hub.connector(VICTIM)).send(PING, {"text": "still routing"}, [BYSTANDER])
    await hub.receive(BYSTANDER, lambda e: e.id == sent.id)


# -- 3. event-id squatting --------------------------------------------------------------------------


async def test_a_forged_event_does_not_occupy_the_owners_id(hub: RunningHub) -> None:
    victim_source = await source_of(hub, VICTIM)
    squatted = f"squat-{uuid.uuid4().hex[:12]}"
    fake = forged(victim_source, PING, {"text": "mine now"}, [BYSTANDER], id=squatted)
    await publish_as(hub, ATTACKER, fake.to_bytes())
    [rejection] = await hub.receive(ATTACKER, rejection_of(squatted))
    assert rejection.data["reason"] == "source_mismatch"
    assert not await ledger_rows(hub, event_id=squatted)

    victim = await hub.connector(VICTIM)
    real = victim.event(PING, {"text": "the real one"}, [BYSTANDER])
    real = real.model_copy(update={"id": squatted})
    await victim.publish(real)
    [got] = await hub.receive(BYSTANDER, lambda e: e.id == squatted)
    assert got.data == {"text": "the real one"} and got.source == victim_source
    [row] = await ledger_rows(hub, event_id=squatted)
    assert row.sender == VICTIM and row.status == "routed"


async def test_one_recipient_cannot_block_anothers_receipt(hub: RunningHub) -> None:
    sender = await hub.connector(VICTIM)
    ping = await sender.send(PING, {"text": "who got this?"}, [ATTACKER, BYSTANDER])
    honest = await hub.connector(BYSTANDER)
    receipt = honest.receipt_for(ping)
    assert receipt is not None
    # the other recipient forges the bystander's receipt (same id, the bystander's source)
    await publish_as(hub, ATTACKER, receipt.model_copy(update={"recipients": [VICTIM]}).to_bytes())
    [rejection] = await hub.receive(ATTACKER, rejection_of(receipt.id))
    assert rejection.data["reason"] == "source_mismatch"
    await honest.publish(receipt)
    [hub_receipt] = await hub.receive(
        VICTIM, lambda e: e.type == "nl.leerplicht.hub.receipt" and e.data["event_id"] == ping.id
    )
    assert hub_receipt.data["recipient"] == BYSTANDER


# -- 5. personal data in the envelope ------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["subject", "correlationid", "id"])
async def test_a_bsn_in_the_envelope_is_refused_and_not_stored(hub: RunningHub, attribute: str) -> None:
    bsn = "111222333"  # passes the 11-test
    sender = await hub.connector(VICTIM)
    value = bsn if attribute != "id" else f"case-{bsn}"
    event = sender.event(PING, {"text": "about a pupil"}, [BYSTANDER]).model_copy(update={attribute: value})
    await sender.publish(event)
    rejection_id = event.id if attribute != "id" else "unknown"
    [rejection] = await hub.receive(
        VICTIM,
        lambda e: (
            e.type == REJECTED
            and e.data["event_id"] == rejection_id
            and e.data["reason"] == "personal_data_in_envelope"
        ),
    )
    assert rejection.data["field"] == attribute and bsn not in rejection.data["message"]
    assert bsn not in json.dumps(rejection.model_dump(mode="json"))
    async with hub.db.session() as s:
        rows = await s.execute(select(LedgerEvent.event_id, LedgerEvent.subject, LedgerEvent.correlationid))
        assert not [r for r in rows if any(v and bsn in v for v in r)]
        audit = await s.scalars(select(AuditRecord.subject_ref))
        assert not [r for r in audit if r and bsn in r]
    assert not [e for e in await hub.drain(BYSTANDER) if e.id == event.id]


# -- 8. flooding ------------------------------------------------------------------------------------


async def test_messages_without_a_sender_are_counted_not_kept(hub: RunningHub) -> None:
    def counted() -> float:
        labels = {"claimed_user": "none"}
        return REGISTRY.get_sample_value("inbeeld_router_unknown_sender_total", labels) or 0.0

    async with hub.db.session() as s:
        dead_before = int(await s.scalar(select(func.count()).select_from(DeadLetter)) or 0)
    before = counted()
    for i in range(20):
        await publish_as(hub, ATTACKER, b"flood %d" % i, user_id=None)
    for _ in range(100):
        if counted() - before >= 20:
            break
        await asyncio.sleep(0.1)
    assert counted() - before == 20
    async with hub.db.session() as s:
        assert int(await s.scalar(select(func.count()).select_from(DeadLetter)) or 0) == dead_before


async def test_a_tenant_over_its_rate_is_refused_rate_limited(hub: RunningHub) -> None:
    limited = await hub.connector("GM0957")
    saved = hub.router.limiter
    hub.router.limiter = RateLimiter(rate=0.001, burst=3)
    try:
        sent = [await limited.send(PING, {"text": f"burst {i}"}, [BYSTANDER]) for i in range(6)]
        ids = {e.id for e in sent}
        delivered = await hub.receive(BYSTANDER, lambda e: e.id in ids, count=3)
        rejections = await hub.receive(
            "GM0957", lambda e: e.type == REJECTED and e.data["event_id"] in ids, count=3
        )
    finally:
        hub.router.limiter = saved
    assert {e.data["reason"] for e in rejections} == {"rate_limited"}
    assert {e.id for e in delivered} | {e.data["event_id"] for e in rejections} == ids
    # refused before being recorded: the same event can be sent again once within the rate
    retry = next(e for e in sent if e.id in {r.data["event_id"] for r in rejections})
    await limited.publish(retry)
    await hub.receive(BYSTANDER, lambda e: e.id == retry.id)
