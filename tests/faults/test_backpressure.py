"""Back-pressure: a tenant that stops consuming fills its inbox to `x-max-length` and no
further; the broker refuses the router's publish (reject-publish), the sender is answered
with hub.rejected `recipient_busy`, and ping round trips between two other tenants stay
about as fast as before the inbox filled up."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import select

from connectors import Connector
from hub import audit
from hub.store.models import AuditRecord, LedgerEvent
from schemas.envelope import CloudEvent
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.faults.conftest import EXTRA_LINES
from tests.utils.hubs import RunningHub
from tests.utils.rabbit import queue_info

pytestmark = [pytest.mark.faults, pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]

PING = "nl.leerplicht.ping"
MAX_LENGTH = 50
SENDER, BUSY, CONSUMING, FLOODER = "GM0518", "GM0307", "GM0599", "GM0957"
ROUND_TRIPS = 120
FLOOD_RATE = 40.0  # pings a second at the full inbox while the round trips are measured


@pytest.fixture(scope="module")
async def small_inbox_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningHub]:
    label = "backpressure"
    settings = base_settings(
        vhost=f"inbeeld-bp-{RUN_ID}",
        database_url=await make_database_url("postgres", label, tmp_path_factory.mktemp("bp")),
        inbox_max_length=MAX_LENGTH,  # as INBEELD_INBOX_MAX_LENGTH=50
    )
    async with private_hub(settings, "postgres", label) as hub:
        yield hub


async def _consume(c: Connector, on_event: Callable[[CloudEvent], None]) -> None:
    async for message in c.inbox():
        await message.ack()
        on_event(message.event)


def _ms(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=20)
    return statistics.median(values) * 1000, q[18] * 1000


async def test_full_inbox_refuses_the_sender_and_does_not_slow_the_others(
    small_inbox_hub: RunningHub,
) -> None:
    hub = small_inbox_hub
    url = hub.tenant_url
    sender = Connector(SENDER, url(SENDER), inbox_name=hub.inbox(SENDER), system="bp")
    flooder = Connector(FLOODER, url(FLOODER), inbox_name=hub.inbox(FLOODER), system="bp")
    consuming = Connector(
        CONSUMING, url(CONSUMING), inbox_name=hub.inbox(CONSUMING), system="bp", receipts=True
    )
    receipts: dict[str, float] = {}
    busy: dict[str, float] = {}
    other_rejections: list[str] = []

    def at_sender(event: CloudEvent) -> None:
        if event.type.endswith("hub.receipt"):
            receipts[str(event.data["event_id"])] = time.monotonic()

    def at_flooder(event: CloudEvent) -> None:
        if event.type.endswith("hub.rejected"):
            if event.data["reason"] == "recipient_busy":
                busy[str(event.data["event_id"])] = time.monotonic()
            else:
                other_rejections.append(event.data["reason"])

    tasks: list[asyncio.Task[None]] = []
    try:
        for c in (sender, flooder, consuming):
            await c.connect()
        tasks = [
            asyncio.create_task(_consume(sender, at_sender)),
            asyncio.create_task(_consume(flooder, at_flooder)),
            asyncio.create_task(_consume(consuming, lambda e: None)),
        ]

        async def round_trips(label: str) -> list[float]:
            times = []
            for i in range(ROUND_TRIPS):
                t0 = time.monotonic()
                event = await sender.send(PING, {"text": f"{label}-{i}"}, [CONSUMING])
                end = t0 + 10
                while event.id not in receipts:
                    assert time.monotonic() < end, f"no receipt for {label}-{i}"
                    await asyncio.sleep(0.001)
                times.append(receipts[event.id] - t0)
                await asyncio.sleep(0.01)
            return times

        await round_trips("warm-up")
        baseline = await round_trips("baseline")

        # Fill the busy tenant's inbox (it never consumes), then keep sending to it.
        for i in range(MAX_LENGTH):
            await flooder.send(PING, {"text": f"fill-{i}"}, [BUSY])
        sent_to_busy: list[str] = []
        stop = asyncio.Event()

        async def flood() -> None:
            i = 0
            while not stop.is_set():
                event = await flooder.send(PING, {"text": f"flood-{i}"}, [BUSY])
                sent_to_busy.append(event.id)
                i += 1
                await asyncio.sleep(1 / FLOOD_RATE)

        flooding = asyncio.create_task(flood())
        start = time.monotonic()
        while not busy and time.monotonic() < start + 15:  # noqa: ASYNC110 - polling a dict
            await asyncio.sleep(0.05)
        assert busy, "the sender to a full inbox was never told recipient_busy"
        loaded = await round_trips("loaded")
        stop.set()
        await flooding
        # Every ping past the limit is answered with recipient_busy.
        deadline = time.monotonic() + 15
        while len(busy) < len(sent_to_busy) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        info = await queue_info(hub.settings, hub.inbox(BUSY))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in (sender, flooder, consuming):
            await c.close()

    assert not other_rejections, other_rejections
    # A quorum queue applies reject-publish once it is *over* x-max-length (RabbitMQ 3.10's
    # rabbit_fifo checks after enqueueing), so it holds at most one message more than the limit.
    held = info.get("messages")
    assert held in (MAX_LENGTH, MAX_LENGTH + 1), held
    missing = [sent_to_busy.index(i) for i in set(sent_to_busy) - set(busy)]
    assert len(missing) == held - MAX_LENGTH, (len(busy), len(sent_to_busy), missing, held)
    # Each refusal is in the ledger (routed, reason recipient_busy) and in the audit chain.
    async with hub.db.session() as s:
        rows = await s.execute(
            select(LedgerEvent.event_id, LedgerEvent.reason).where(LedgerEvent.event_id.in_(busy))
        )
        reasons = {event_id: reason for event_id, reason in rows}
        refused = set(
            await s.scalars(
                select(AuditRecord.subject_ref).where(AuditRecord.outcome == "refused:recipient_busy")
            )
        )
        chain = await audit.verify(s)
    assert len(reasons) == len(busy) and set(reasons.values()) == {"recipient_busy"}
    assert set(busy) <= refused and chain.intact
    p50_base, p95_base = _ms(baseline)
    p50_load, p95_load = _ms(loaded)
    line = (
        f"back-pressure: inbox max {MAX_LENGTH} full, {len(busy)} sends answered recipient_busy "
        f"at {FLOOD_RATE:.0f}/s; ping round trip to a consuming tenant p50/p95 "
        f"{p50_base:.1f}/{p95_base:.1f} ms before, {p50_load:.1f}/{p95_load:.1f} ms while full"
    )
    EXTRA_LINES.append(line)
    print(line)
    assert p95_load < 3 * p95_base + 50, line
