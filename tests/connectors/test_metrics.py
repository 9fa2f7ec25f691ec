"""The connector's metrics port ([metrics] of `run`), scraped after a delivery through a
webhook that fails once: attempts, failures and latency per sink, the outbox counted on the
scrape, the events processed; no event id and no BSN in the exposition."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.config import parse_config
from tests.connectors.test_runtime import Running, broker_section, until, webhook, webhook_sink
from tests.utils.hubs import RunningHub
from tests.utils.webhook import Webhook

pytestmark = pytest.mark.broker
__all__ = ["webhook"]  # the fixture, shared with the runtime's tests

PING = "nl.leerplicht.ping"
SENDER, RECEIVER = "GM0518", "GM0307"
BSN = "111222333"  # passes the 11-test
SINK = "case-system"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_the_metrics_port_shows_webhook_attempts_failures_and_the_outbox(
    hub: RunningHub, tmp_path: Path, webhook: Webhook
) -> None:
    await hub.drain(RECEIVER)  # what earlier tests left: this test counts exactly
    raw = {
        "tenant": RECEIVER,
        "system": "test-metrics",
        "broker": {**broker_section(hub.tenant_url(RECEIVER)), "inbox": hub.inbox(RECEIVER)},
        "store": {"path": "connector.db"},
        "sinks": [webhook_sink(webhook)],
        "metrics": {"port": 0},  # any free port
    }
    config = parse_config(raw, tmp_path)
    webhook.down = True
    async with Running(config) as runtime:
        assert runtime.metrics_port is not None and runtime.metrics_port.port
        url = f"http://127.0.0.1:{runtime.metrics_port.port}/metrics"
        async with httpx.AsyncClient() as client:

            async def scrape() -> str:
                response = await client.get(url)
                assert response.status_code == 200
                return response.text

            before = parse(await scrape())
            sender = await hub.connector(SENDER)
            sent = await sender.send(PING, {"text": f"pupil {BSN} {uuid.uuid4().hex}"}, [RECEIVER])
            await until(lambda: webhook.refused() >= 1, what="a refused attempt")
            webhook.down = False
            await until(lambda: len(webhook.accepted()) == 1, what="the delivery")
            await until(lambda: runtime.workers[0].delivered == 1, what="the outbox marked")
            text = await scrape()
            after = parse(text)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    attempts = len(webhook.requests)
    assert moved("inbeeld_connector_webhook_attempts_total", sink=SINK) == attempts
    assert moved("inbeeld_connector_webhook_failures_total", sink=SINK) == webhook.refused() == attempts - 1
    assert moved("inbeeld_connector_webhook_duration_seconds_count", sink=SINK) == attempts
    assert moved("inbeeld_connector_events_processed_total", type=PING) == 1
    # The outbox is counted in the store when scraped (this runtime's own store: exact).
    assert value(after, "inbeeld_connector_outbox_items", sink=SINK, status="delivered") == 1
    assert value(after, "inbeeld_connector_outbox_items", sink=SINK, status="pending") == 0
    assert ("inbeeld_connector_sequence_gaps_total", frozenset()) in after
    assert sent.id not in text and BSN not in text
