"""Resync after an outage, end to end: a connector runtime (webhook sink, [hub] token) whose
inbox loses messages while it is down (purged through the broker's management API) sees the
gap when it is back, asks the hub by itself to send the missing numbers again, and hands each
event to the webhook exactly once - the lost ones with their original ids, and nothing twice
when the hub sends copies it had already."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import aio_pika
import httpx
import pytest

from connectors import Connector, MemoryInboxState
from connectors.config import ConnectorConfig, parse_config
from connectors.hub_api import HubApiError
from connectors.runtime import Runtime
from hub import publisher
from hub.api.app import create_app
from hub.broker.topology import DELIVERY
from schemas.envelope import CloudEvent
from schemas.errors import Gone
from tests.connectors.test_runtime import PING, Running, broker_section, marked, until, webhook_sink
from tests.utils.api import served
from tests.utils.hubs import RunningHub
from tests.utils.rabbit import purge, queue_info
from tests.utils.webhook import Webhook

pytestmark = [pytest.mark.broker, pytest.mark.slow]

RECEIVER = "GM0307"
SENDER = "GM0518"
SECRET = b"test-webhook-secret"


@pytest.fixture
def webhook():
    hook = Webhook(SECRET).start()
    yield hook
    hook.stop()


def _config(
    tmp: Path, hub: RunningHub, api_url: str, token: str, hook: Webhook, gap_grace: float = 1.0
) -> ConnectorConfig:
    raw = {
        "tenant": RECEIVER,
        "system": "test-resync",
        "broker": {
            **broker_section(hub.tenant_url(RECEIVER)),
            "inbox": hub.inbox(RECEIVER),
            "gap_grace": gap_grace,
        },
        "hub": {"url": api_url, "token": token},
        "store": {"path": "connector.db"},
        "sinks": [webhook_sink(hook)],
    }
    return parse_config(raw, tmp)


async def until_waiting(hub: RunningHub, n: int, timeout: float = 20.0) -> None:
    """Until `n` messages wait in the receiver's inbox (the broker's figure lags a little)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while await _waiting(hub) != n:
        if loop.time() > end:
            raise TimeoutError(f"{n} messages never waited in the inbox")
        await asyncio.sleep(0.2)


async def until_delivered(runtime: Runtime) -> None:
    """Until the webhook outbox has nothing pending: a runtime stopped between the webhook's
    answer and the outbox's note of it posts that event again when it starts (at least once)."""
    assert runtime.store is not None
    for _ in range(200):
        if not (await runtime.store.outbox_counts("case-system")).get("pending", 0):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the webhook outbox did not empty")


async def _waiting(hub: RunningHub) -> int:
    return int((await queue_info(hub.settings, hub.inbox(RECEIVER))).get("messages", 0) or 0)  # type: ignore[call-overload]


async def test_a_purged_inbox_is_filled_again_by_a_resync_and_nothing_is_doubled(
    hub: RunningHub, tmp_path: Path, webhook: Webhook
) -> None:
    marker = f"resync-{uuid.uuid4().hex[:8]}"
    mine = marked(marker)
    sender = await hub.connector(SENDER)
    await hub.drain(RECEIVER)
    token = await hub.token("tenant", RECEIVER)
    async with served(create_app(hub.settings, hub.db)) as api_url:
        config = _config(tmp_path, hub, api_url, token, webhook)

        # Before the outage: three events reach the case system.
        before = [await sender.send(PING, {"text": f"{marker} before {i}"}, [RECEIVER]) for i in range(3)]
        async with Running(config) as runtime:
            await until(lambda: len(webhook.accepted_where(mine)) == 3, what="the first three")
            await until_delivered(runtime)

        # The connector is down; three more arrive, and the inbox loses them (purged).
        lost = [await sender.send(PING, {"text": f"{marker} lost {i}"}, [RECEIVER]) for i in range(3)]
        await until_waiting(hub, 3)
        await purge(hub.settings, hub.inbox(RECEIVER))
        await until_waiting(hub, 0)
        # Two more after the purge: the connector sees the hole in the sequence when back.
        after = [await sender.send(PING, {"text": f"{marker} after {i}"}, [RECEIVER]) for i in range(2)]
        await until_waiting(hub, 2)

        async with Running(config) as runtime:
            everything = {e.id for e in before + lost + after}
            await until(
                lambda: set(webhook.counts(mine)) == everything, timeout=30, what="the lost events again"
            )
            assert runtime.gaps == 1 and runtime.resynced == 1
            assert runtime.connector is not None and runtime.connector.stats.resyncs == 1
            assert runtime.store is not None
            assert await runtime.store.get_state("resync_needed_from") == ""

            # The hub sends everything since the first again (an operator's or a cautious
            # connector's resync): the copies it had already are dropped by their id.
            first = min(int(d.body["sequence"]) for d in webhook.accepted_where(mine))
            connector = runtime.connector
            duplicates = connector.stats.duplicates
            async with httpx.AsyncClient(base_url=api_url) as http:
                r = await http.post(
                    "/inbox/resync",
                    json={"from_sequence": first, "to_sequence": first + 7},
                    headers={"Authorization": f"Bearer {token}"},
                )
            assert r.status_code == 200, r.text
            assert r.json()["republished"] == 8
            await until(lambda: connector.stats.duplicates == duplicates + 8, what="the copies again")
            assert connector.stats.gaps == 1  # late copies of old numbers are no new gap

        counts = webhook.counts(mine)
        assert set(counts) == everything
        assert all(n == 1 for n in counts.values()), counts  # nothing doubled at the webhook
        # The lost ones came with their original ids and sequences.
        got = {d.event_id: d.body for d in webhook.accepted_where(mine)}
        assert [got[e.id]["data"]["text"] for e in lost] == [f"{marker} lost {i}" for i in range(3)]
        sent = [e.id for e in before + lost + after]
        assert sorted(sent, key=lambda i: int(got[i]["sequence"])) == sent


async def test_a_gap_open_when_the_connector_stops_is_asked_for_when_it_starts_again(
    hub: RunningHub, tmp_path: Path, webhook: Webhook
) -> None:
    marker = f"left-{uuid.uuid4().hex[:8]}"
    mine = marked(marker)
    sender = await hub.connector(SENDER)
    await hub.drain(RECEIVER)
    token = await hub.token("tenant", RECEIVER)
    async with served(create_app(hub.settings, hub.db)) as api_url:
        # A grace longer than the connector runs: the gap is still open when it stops.
        config = _config(tmp_path, hub, api_url, token, webhook, gap_grace=600)
        first = await sender.send(PING, {"text": f"{marker} first"}, [RECEIVER])
        async with Running(config) as runtime:
            await until(lambda: len(webhook.accepted_where(mine)) == 1, what="the first")
            await until_delivered(runtime)
        lost = await sender.send(PING, {"text": f"{marker} lost"}, [RECEIVER])
        await until_waiting(hub, 1)
        await purge(hub.settings, hub.inbox(RECEIVER))
        await until_waiting(hub, 0)
        last = await sender.send(PING, {"text": f"{marker} last"}, [RECEIVER])
        async with Running(config) as runtime:
            await until(lambda: len(webhook.accepted_where(mine)) == 2, what="the last")
            await until_delivered(runtime)
            assert runtime.gaps == 0 and runtime.resynced == 0  # within its grace still
        # Stopping reported the open gap (kept in the store), but asked nothing while going.
        assert runtime.gaps == 1 and runtime.resynced == 0
        async with Running(config) as again:
            await until(lambda: len(webhook.accepted_where(mine)) == 3, what="the lost one")
            await until(lambda: again.resynced == 1, what="the resync done")
            await until_delivered(again)
        counts = webhook.counts(mine)
        assert counts == {first.id: 1, lost.id: 1, last.id: 1}


Asked = list[tuple[int, int]]


async def _gap_with(hub: RunningHub, answer: Callable[[int], None]) -> tuple[Connector, Asked]:
    """A connector whose inbox gets numbers base+1 and base+3 (base+2 lost) and whose resync
    callback records each ask and answers it with `answer(ask number)`."""
    asked: Asked = []

    async def resync(first: int, last: int) -> None:
        asked.append((first, last))
        answer(len(asked))

    state = MemoryInboxState()
    receiver = Connector(
        "GM0957",
        hub.tenant_url("GM0957"),
        inbox_name=hub.inbox("GM0957"),
        system="test-resync",
        state=state,
        gap_grace=0.3,
        resync=resync,
        reconnect_max=0.5,
    )
    await receiver.connect()
    await hub.drain("GM0957")
    base = 20_000_000 + int(uuid.uuid4().int % 1_000_000) * 10  # clear of the inbox's real numbers
    await state.set_last_sequence(base)
    conn = await aio_pika.connect(hub.settings.amqp_url_for())
    try:
        exchange = await (await conn.channel()).get_exchange(DELIVERY)
        for n in (1, 3):
            event = CloudEvent(
                source=hub.settings.hub_source, type=PING, recipients=["GM0957"], data={"text": "x"}
            )
            await exchange.publish(
                publisher.delivery_message(event.with_sequence(base + n)), routing_key="GM0957"
            )
    finally:
        await conn.close()
    async for message in receiver.inbox(idle_timeout=1.5):
        await message.ack()
    return receiver, asked


async def test_the_sdk_asks_again_while_the_hub_cannot_be_reached(hub: RunningHub) -> None:
    def first_fails(n: int) -> None:
        if n == 1:
            raise HubApiError("cannot reach the hub for POST /inbox/resync (ConnectError)")

    receiver, asked = await _gap_with(hub, first_fails)
    try:
        await until(lambda: receiver.stats.resyncs == 1, what="a second, successful ask")
        assert receiver.stats.gaps == 1
        assert len(asked) == 2 and asked[0] == asked[1] and asked[0][0] == asked[0][1]  # just the one lost
    finally:
        await receiver.close()


async def test_the_sdk_gives_up_on_a_range_the_hub_no_longer_keeps(hub: RunningHub) -> None:
    def gone(_: int) -> None:
        raise Gone("sequence is older than the hub keeps copies", field="from_sequence")

    receiver, asked = await _gap_with(hub, gone)
    try:
        await asyncio.sleep(1.5)  # longer than the backoff: no second ask comes
        assert len(asked) == 1 and receiver.stats.resyncs == 0 and receiver.stats.gaps == 1
    finally:
        await receiver.close()
