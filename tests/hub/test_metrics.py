"""The hub's Prometheus metrics, scraped for real: a router's own metrics port and the API's
/metrics, before and after a known burst. Counters move by exactly the burst, with bounded
labels: no event id and no BSN anywhere in an exposition."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from hub.api.app import create_app
from hub.store.models import AuditRecord
from schemas.names import ROUTER_QUEUE
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

PING = "nl.leerplicht.ping"
BSN = "111222333"  # passes the 11-test
SENDER, RECIPIENT, IDLE = "GM0518", "GM0599", "GM0957"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def made_up_type() -> str:
    """An event type nobody defined, unique to this run (letters only, as the envelope wants)."""
    letters = uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop"))
    return f"nl.leerplicht.made_up.{letters}"


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def events(samples: Samples, type: str, outcome: str, reason: str = "") -> float:
    return value(samples, "inbeeld_router_events_total", type=type, outcome=outcome, reason=reason)


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "the metric did not move in time"
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def metrics_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningHub]:
    label = f"metrics_{uuid.uuid4().hex[:6]}"
    tmp: Path = tmp_path_factory.mktemp("metrics")
    settings = base_settings(
        vhost=f"inbeeld-metrics-{RUN_ID}",
        database_url=await make_database_url("sqlite", label, tmp),
        router_metrics_port=0,  # as INBEELD_ROUTER_METRICS_PORT: any free port
    )
    async with private_hub(settings, "sqlite", label) as hub:
        yield hub


async def scrape_router(hub: RunningHub) -> str:
    assert hub.router.metrics_port
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{hub.router.metrics_port}/metrics")
    assert response.status_code == 200
    return response.text


async def test_the_router_port_counts_a_burst_by_type_outcome_and_reason(metrics_hub: RunningHub) -> None:
    hub = metrics_hub
    before_text = await scrape_router(hub)
    before = parse(before_text)
    sender = await hub.connector(SENDER)
    pings = [await sender.send(PING, {"text": f"burst {i}"}, [RECIPIENT]) for i in range(5)]
    with_bsn = sender.event(PING, {"text": "about a pupil"}, [RECIPIENT]).model_copy(update={"subject": BSN})
    await sender.publish(with_bsn)
    made_up = await sender.publish(sender.event(made_up_type(), {}, [RECIPIENT]))
    duplicate = await sender.publish(pings[0])
    await hub.receive(RECIPIENT, lambda e: e.id in {p.id for p in pings}, count=len(pings))
    rejected = {with_bsn.id, made_up.id}
    await hub.receive(
        SENDER,
        lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] in rejected,
        count=len(rejected),
    )

    after: Samples = {}

    async def latency_observed() -> bool:
        nonlocal after
        after = parse(await scrape_router(hub))
        n = "inbeeld_router_routing_latency_seconds_count"
        return value(after, n) - value(before, n) >= len(pings)

    await until(latency_observed)

    def moved(type: str, outcome: str, reason: str = "") -> float:
        return events(after, type, outcome, reason) - events(before, type, outcome, reason)

    assert moved(PING, "received") == len(pings) + 2  # the BSN one and the duplicate too
    assert moved(PING, "routed") == len(pings)
    assert moved(PING, "duplicate") == 1
    assert moved(PING, "rejected", "personal_data_in_envelope") == 1
    assert moved("other", "received") == 1  # a made-up type is not a label of its own
    assert moved("other", "rejected", "unknown_type") == 1
    lat = "inbeeld_router_routing_latency_seconds_count"
    assert value(after, lat) - value(before, lat) == len(pings)
    for histogram in (
        "inbeeld_router_batch_messages",
        "inbeeld_router_batch_duration_seconds",
        "inbeeld_router_confirm_duration_seconds",
    ):
        assert value(after, f"{histogram}_count") > value(before, f"{histogram}_count"), histogram
    exposition = await scrape_router(hub)
    for sent in [*pings, with_bsn, made_up, duplicate]:
        assert sent.id not in exposition
    assert BSN not in exposition
    assert made_up.type not in exposition


async def test_the_router_port_says_how_old_its_tenant_directory_is(metrics_hub: RunningHub) -> None:
    hub = metrics_hub
    name = "inbeeld_router_directory_loaded_timestamp_seconds"
    first = value(parse(await scrape_router(hub)), name)
    assert first > 0
    await asyncio.sleep(1.2)  # past the directory's time to live: the next event reloads it
    sender = await hub.connector(SENDER)
    ping = await sender.send(PING, {"text": "reload"}, [RECIPIENT])
    await hub.receive(RECIPIENT, lambda e: e.id == ping.id)
    assert value(parse(await scrape_router(hub)), name) > first


async def test_an_unknown_sender_is_counted_on_the_router_port(metrics_hub: RunningHub) -> None:
    hub = metrics_hub
    user = hub.settings.amqp_user  # a broker user that is no tenant (the hub's own)
    before = value(parse(await scrape_router(hub)), "inbeeld_router_unknown_sender_total", claimed_user=user)
    # The hub's own user publishing to the ingress without the replay header names no tenant.
    conn = await aio_pika.connect(hub.settings.amqp_url_for())
    try:
        channel = await conn.channel(publisher_confirms=True)
        ingress = await channel.get_exchange("inbeeld.ingress", ensure=False)
        await ingress.publish(aio_pika.Message(b"{}", user_id=user), routing_key=PING)
    finally:
        await conn.close()

    async def counted() -> bool:
        samples = parse(await scrape_router(hub))
        return value(samples, "inbeeld_router_unknown_sender_total", claimed_user=user) == before + 1

    await until(counted)


async def test_the_api_serves_gauges_computed_on_scrape(metrics_hub: RunningHub) -> None:
    hub = metrics_hub
    app = create_app(hub.settings, hub.db)
    app.state.gauges.queue_ttl = 0.0  # sample the management API on every scrape here
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as api:

        async def scrape() -> Samples:
            response = await api.get("/metrics")
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/plain")
            return parse(response.text)

        before = await scrape()
        assert value(before, "inbeeld_broker_management_up") == 1
        # The router runs in this process: its counters are in the API's exposition too.
        assert any(name == "inbeeld_router_events_total" for name, _ in before)

        # Dead letters waiting: an unparseable body with no id goes to the dead-letter store.
        await hub.publish_raw(SENDER, b"\x00not json " + BSN.encode())

        async def dead_letter_counted() -> bool:
            samples = await scrape()
            reason = "envelope_invalid"
            return value(samples, "inbeeld_dead_letters_waiting", reason=reason) == (
                value(before, "inbeeld_dead_letters_waiting", reason=reason) + 1
            )

        await until(dead_letter_counted)

        # Queue depth per tenant inbox: pings nobody reads wait in IDLE's inbox.
        await hub.drain(IDLE)
        sender = await hub.connector(SENDER)
        waiting = [await sender.send(PING, {"text": f"wait {i}"}, [IDLE]) for i in range(3)]

        async def inbox_sampled() -> bool:
            samples = await scrape()
            return value(samples, "inbeeld_inbox_messages", tenant=IDLE) == len(waiting)

        await until(inbox_sampled, timeout=30.0)  # the broker's statistics lag a few seconds
        samples = await scrape()
        assert ("inbeeld_hub_queue_messages", frozenset({("queue", ROUTER_QUEUE)})) in samples
        async with hub.db.session() as s:
            records = await s.scalar(select(func.count()).select_from(AuditRecord))
        assert value(samples, "inbeeld_audit_chain_records") == records
        text = (await api.get("/metrics")).text
        assert BSN not in text and not [e for e in waiting if e.id in text]
        await hub.drain(IDLE)


async def test_metrics_token_guards_the_api_scrape(metrics_hub: RunningHub) -> None:
    token = uuid.uuid4().hex
    settings = metrics_hub.settings.model_copy(update={"metrics_token": token})
    app = create_app(settings, metrics_hub.db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as api:
        assert (await api.get("/metrics")).status_code == 401
        wrong = await api.get("/metrics", headers={"authorization": "Bearer " + "x" * 32})
        assert wrong.status_code == 401
        assert wrong.headers["content-type"].startswith("application/problem+json")
        operator = await metrics_hub.token("operator")  # an API token is not the scrape token
        assert (await api.get("/metrics", headers={"authorization": f"Bearer {operator}"})).status_code == 401
        ok = await api.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "inbeeld_audit_chain_records" in ok.text
