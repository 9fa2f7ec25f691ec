"""The SDK (`connectors.Connector`) against the real broker and hub: validation before
sending, de-duplication, sequence gaps, reconnection through a TCP proxy, the sealer seam,
receipts. Inboxes read here are GM0307/GM0957, always filtered on this test's marker."""

from __future__ import annotations

import asyncio
import gc
import uuid
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import pytest
from prometheus_client import REGISTRY

from connectors import Connector, InboxMessage, MemoryInboxState
from connectors.client import RECEIPT_TYPE, ConnectorError
from hub import publisher
from hub.broker.topology import DELIVERY
from schemas.envelope import CloudEvent
from schemas.errors import SchemaInvalid
from schemas.events import Payload, Receipt, TransferAccepted
from tests.utils.hubs import RunningHub
from tests.utils.proxy import TcpProxy

pytestmark = pytest.mark.broker
PING = "nl.leerplicht.ping"


async def read_until(c: Connector, want, count: int = 1, timeout: float = 15.0) -> list[InboxMessage]:
    got: list[InboxMessage] = []

    async def read() -> None:
        async for message in c.inbox(idle_timeout=timeout):
            await message.ack()
            if want(message.event):
                got.append(message)
                if len(got) >= count:
                    return

    await asyncio.wait_for(read(), timeout)
    assert len(got) == count
    return got


def text_is(prefix: str):
    return lambda e: e.type == PING and str((e.data or {}).get("text", "")).startswith(prefix)


async def connector(hub: RunningHub, code: str, **kw: Any) -> Connector:
    c = Connector(code, hub.tenant_url(code), inbox_name=hub.inbox(code), system="test-sdk", **kw)
    await c.connect()
    return c


async def test_send_validates_and_inbox_yields_the_validated_payload(hub: RunningHub) -> None:
    marker = f"sdk-{uuid.uuid4().hex[:8]}"
    sender, receiver = await connector(hub, "GM0307"), await connector(hub, "GM0957")
    try:
        with pytest.raises(SchemaInvalid) as exc:
            await sender.send(PING, {"text": "x" * 500}, ["GM0957"])
        assert exc.value.field == "text"
        assert sender.stats.published == 0
        sent = await sender.send(PING, {"text": marker}, ["GM0957"], subject="s-1")
        assert sent.dataschema and sent.dataschema.endswith("/ping/v1.json")
        [message] = await read_until(receiver, text_is(marker))
        assert message.event.id == sent.id and message.event.sequence is not None
        assert message.payload is not None and message.payload.model_dump() == {"text": marker}
    finally:
        await sender.close()
        await receiver.close()


async def test_duplicates_are_dropped_and_gaps_reported(hub: RunningHub) -> None:
    marker = f"dup-{uuid.uuid4().hex[:8]}"
    gaps: list[tuple[int, int]] = []
    state = MemoryInboxState()
    sender = await connector(hub, "GM0307")
    receiver = await connector(
        hub, "GM0957", state=state, on_gap=lambda a, b: gaps.append((a, b)), gap_grace=0
    )
    try:
        first = await sender.send(PING, {"text": f"{marker}-1"}, ["GM0957"])
        [m1] = await read_until(receiver, lambda e: e.id == first.id)
        seq = m1.event.sequence
        assert seq is not None
        # A copy of an event already processed (as after a lost ack) is acked, not yielded.
        already = sender.event(PING, {"text": f"{marker}-2"}, ["GM0957"])
        await state.remember(already)
        await sender.publish(already)
        after = await sender.send(PING, {"text": f"{marker}-3"}, ["GM0957"])
        [m3] = await read_until(receiver, lambda e: e.id in {already.id, after.id})
        assert m3.event.id == after.id
        assert receiver.stats.duplicates == 1
        # Pretend we missed some: the next sequence jumps past what we saw.
        await state.set_last_sequence((m3.event.sequence or 0) - 4)
        gaps.clear()
        last = await sender.send(PING, {"text": f"{marker}-4"}, ["GM0957"])
        [m4] = await read_until(receiver, lambda e: e.id == last.id)
        assert receiver.stats.gaps >= 1
        assert gaps and gaps[-1] == ((m3.event.sequence or 0) - 3, m4.event.sequence)
        assert await state.last_sequence() == m4.event.sequence
    finally:
        await sender.close()
        await receiver.close()


async def test_reconnects_on_its_own_for_publish_and_consume(hub: RunningHub) -> None:
    marker = f"proxy-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(hub.tenant_url("GM0957"))
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()

    def via_proxy(code: str) -> str:
        url = hub.tenant_url(code)
        return url.replace(urlsplit(url).netloc.rsplit("@", 1)[1], f"127.0.0.1:{proxy.port}")

    sender = Connector("GM0307", via_proxy("GM0307"), system="test-sdk", reconnect_max=0.5)
    receiver = Connector(
        "GM0957", via_proxy("GM0957"), inbox_name=hub.inbox("GM0957"), system="test-sdk", reconnect_max=0.5
    )
    await sender.connect()
    await receiver.connect()
    got: list[str] = []

    async def consume() -> None:
        async for message in receiver.inbox():
            await message.ack()
            if text_is(marker)(message.event):
                got.append(message.event.data["text"])

    consuming = asyncio.create_task(consume())
    try:
        await sender.send(PING, {"text": f"{marker}-a"}, ["GM0957"])
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.05)
        await proxy.disconnect_all()
        proxy.refuse = True  # an outage: publishing waits and retries rather than hanging
        publishing = asyncio.create_task(sender.send(PING, {"text": f"{marker}-b"}, ["GM0957"]))
        await asyncio.sleep(1.0)
        assert not publishing.done()
        proxy.refuse = False
        await asyncio.wait_for(publishing, 30)
        for _ in range(300):
            if len(got) >= 2:
                break
            await asyncio.sleep(0.05)
        assert got == [f"{marker}-a", f"{marker}-b"]
        assert sender.stats.reconnects >= 1 and receiver.stats.reconnects >= 1
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await sender.close()
        await receiver.close()
        await proxy.close()


class FakeSealer:
    def __init__(self) -> None:
        self.sealed: list[CloudEvent] = []

    async def seal(self, event: CloudEvent) -> CloudEvent:
        self.sealed.append(event)
        return event.model_copy(update={"data": {"jws": "sealed"}})

    async def open(self, event: CloudEvent) -> Payload:
        return TransferAccepted(transfer_id="tr-1")


async def test_sealer_seam_and_receipts_without_network() -> None:
    sealer = FakeSealer()
    c = Connector("GM0307", "amqp://u:p@127.0.0.1:1/v", system="test-sdk", sealer=sealer, receipts=True)
    delivered: list[CloudEvent] = []

    async def deliver(event: CloudEvent) -> CloudEvent:
        delivered.append(event)
        return event

    c._deliver = deliver  # type: ignore[method-assign]
    sent = await c.send("nl.leerplicht.transfer.accepted", {"transfer_id": "tr-1"}, ["GM0957"])
    assert sealer.sealed and sealer.sealed[0].data == {"transfer_id": "tr-1"}
    assert sent.data == {"jws": "sealed"} and delivered == [sent]
    await c.send(PING, {"text": "plain"}, ["GM0957"])  # protection none: never sealed
    assert len(sealer.sealed) == 1 and delivered[-1].data == {"text": "plain"}

    incoming = CloudEvent(source="urn:nld:cbs:GM0957:systeem:x", type=PING, recipients=["GM0307"], data={})
    receipt = c.receipt_for(incoming)
    assert receipt is not None and receipt.type == RECEIPT_TYPE and receipt.recipients == ["GM0957"]
    assert Receipt.model_validate(receipt.data) == Receipt(event_id=incoming.id, event_source=incoming.source)
    assert c.receipt_for(incoming).id == receipt.id  # a repeat is a duplicate for the hub
    assert c.receipt_for(receipt) is None  # no receipt for a receipt
    hub_event = incoming.model_copy(update={"type": "nl.leerplicht.hub.rejected"})
    assert c.receipt_for(hub_event) is None
    await c._after_processing(incoming)
    assert delivered[-1].type == RECEIPT_TYPE and len(sealer.sealed) == 1


async def _deliver(hub: RunningHub, code: str, events: list[CloudEvent]) -> None:
    """Put copies straight into an inbox, as the hub's routers would (admin connection)."""
    conn = await aio_pika.connect(hub.settings.amqp_url_for())
    try:
        channel = await conn.channel()
        exchange = await channel.get_exchange(DELIVERY)
        for ev in events:
            await exchange.publish(publisher.delivery_message(ev), routing_key=code)
    finally:
        await conn.close()


async def test_a_late_sequence_number_is_not_a_gap_but_a_lost_one_is(hub: RunningHub) -> None:
    """Two routers may publish an inbox's copies out of order: 5 before 3 and 4 is reordering,
    and only a number that never comes (7) is reported, once gap_grace has passed."""
    gaps: list[tuple[int, int]] = []
    state = MemoryInboxState()
    receiver = await connector(
        hub, "GM0957", state=state, on_gap=lambda a, b: gaps.append((a, b)), gap_grace=0.5
    )
    marker = f"reorder-{uuid.uuid4().hex[:8]}"
    base = 10_000_000 + int(uuid.uuid4().int % 1_000_000) * 10  # clear of this inbox's real numbers

    def copy(offset: int) -> CloudEvent:
        data = {"text": f"{marker} {offset}"}
        event = CloudEvent(source=hub.settings.hub_source, type=PING, recipients=["GM0957"], data=data)
        return event.with_sequence(base + offset)

    try:
        await hub.drain("GM0957")
        await state.set_last_sequence(base)
        gaps_before = REGISTRY.get_sample_value("inbeeld_connector_sequence_gaps_total") or 0.0
        await _deliver(hub, "GM0957", [copy(1), copy(2), copy(5), copy(3), copy(4), copy(6), copy(8)])
        got = await read_until(receiver, lambda e: e.data["text"].startswith(marker), count=7)
        assert [m.event.sequence - base for m in got] == [1, 2, 5, 3, 4, 6, 8]  # type: ignore[operator]
        assert gaps == [] and receiver.stats.reordered == 2  # 3 and 4 came late, within grace
        async for _ in receiver.inbox(idle_timeout=1.5):  # 7 never comes: reported while quiet
            pass
        assert gaps == [(base + 7, base + 8)] and receiver.stats.gaps == 1
        assert REGISTRY.get_sample_value("inbeeld_connector_sequence_gaps_total") == gaps_before + 1
    finally:
        await receiver.close()


async def test_an_unreachable_broker_is_one_clear_error_and_leaves_nothing_open() -> None:
    c = Connector("GM0957", "amqp://user:secret@127.0.0.1:1/inbeeld", system="test-sdk", connect_timeout=2)
    with pytest.raises(ConnectorError, match=r"cannot reach the hub's broker at 127\.0\.0\.1"):
        await c.connect()
    # Nothing left for the garbage collector to close off the loop (aio-pika's __del__ would
    # leave an un-awaited close() there: an error under -W error).
    await asyncio.to_thread(gc.collect)
