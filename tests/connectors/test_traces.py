"""Traces through two connector runtimes and the hub: folder source -> connector.publish ->
router -> connector.receive -> connector.process and connector.webhook, the webhook's
`traceparent` header continuing the same trace; the processing logs of both connectors;
log lines carrying the current span's ids."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from connectors.store import LocalStore
from schemas import tracing
from schemas.processing_log import STATUS_OK, processing_activity_id
from tests.connectors.test_runtime import PING, Running, make_config, marked, until, webhook, webhook_sink
from tests.utils.hubs import RunningHub
from tests.utils.webhook import Webhook

pytestmark = pytest.mark.broker
__all__ = ["webhook"]  # the fixture, shared with test_runtime


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("inbeeld-connector-test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.configure("inbeeld-test")


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def _child(spans: list[ReadableSpan], name: str, parent: ReadableSpan) -> ReadableSpan:
    [found] = [
        s
        for s in spans
        if s.name == name and s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    return found


async def test_a_ping_from_folder_to_webhook_is_one_trace(
    hub: RunningHub, tmp_path: Path, webhook: Webhook, exported: InMemorySpanExporter
) -> None:
    marker = f"traced-{uuid.uuid4().hex[:8]}"
    outgoing = tmp_path / "denhaag" / "outgoing"
    den_haag = make_config(
        tmp_path / "denhaag",
        hub,
        "GM0518",
        sources=[{"kind": "folder", "path": str(outgoing), "poll_seconds": 0.1}],
    )
    rotterdam = make_config(tmp_path / "rotterdam", hub, "GM0599", sinks=[webhook_sink(webhook)])
    async with Running(den_haag), Running(rotterdam):
        doc = {"type": PING, "recipients": ["GM0599"], "data": {"text": marker}}
        (outgoing / ".drop.tmp").write_text(json.dumps(doc))
        (outgoing / ".drop.tmp").rename(outgoing / "drop.json")
        await until(lambda: webhook.accepted_where(marked(marker)), what="webhook delivery")
        [delivery] = webhook.accepted_where(marked(marker))
        await until(
            lambda: any(s.name == "connector.webhook" for s in exported.get_finished_spans()),
            what="the webhook span",
        )
    spans = list(exported.get_finished_spans())
    event_id = delivery.event_id
    [sent] = [
        s
        for s in spans
        if s.name == "connector.publish" and (s.attributes or {}).get("inbeeld.event.id") == event_id
    ]
    decided = _child(spans, "router.decide", sent)
    [published] = [
        s for s in spans if s.name == "router.publish" and any(k.context == decided.context for k in s.links)
    ]
    assert published.attributes is not None and published.attributes["inbeeld.copies"] >= 1
    received = _child(spans, "connector.receive", decided)
    processed = _child(spans, "connector.process", received)
    posted = _child(spans, "connector.webhook", received)
    trace_id = _hex(sent.context.trace_id, 32)
    assert {s.context.trace_id for s in (decided, received, processed, posted)} == {sent.context.trace_id}
    # The case system is handed the trace: the header names the webhook span, the body's
    # traceparent the receive span.
    assert delivery.traceparent is not None
    assert delivery.traceparent.split("-")[:3] == ["00", trace_id, _hex(posted.context.span_id, 16)]
    assert delivery.body["traceparent"].split("-")[1:3] == [trace_id, _hex(received.context.span_id, 16)]

    # Both connectors' processing logs have the event under the same trace id.
    for folder, name, span in (("denhaag", "send ping", sent), ("rotterdam", "receive ping", received)):
        store = await LocalStore.open(tmp_path / folder / "connector.db")
        try:
            [record] = await store.processing_records(trace_id)
        finally:
            await store.close()
        assert (record.name, record.event_id, record.span_id) == (
            name,
            event_id,
            _hex(span.context.span_id, 16),
        )
        assert record.status == STATUS_OK and record.processing_activity_id == processing_activity_id(PING)
        assert record.data_subject_id is None  # a ping is about nobody
