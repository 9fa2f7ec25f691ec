"""The connector runtime against the real hub and broker: folder source -> hub -> webhook,
with a webhook that fails for a while, a runtime restart, and a broker connection cut through
a TCP proxy. Every inbox here is read only by a runtime, and every assertion filters on this
test's own marker (other modules share the session hub)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pytest

from connectors import Connector
from connectors.config import ConnectorConfig, parse_config
from connectors.runtime import Runtime
from tests.utils.hubs import RunningHub
from tests.utils.proxy import TcpProxy
from tests.utils.webhook import Webhook

pytestmark = pytest.mark.broker
PING = "nl.leerplicht.ping"
SECRET = b"test-webhook-secret"


def broker_section(url: str, via: tuple[str, int] | None = None) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = via or (parts.hostname, parts.port or 5672)
    return {
        "url": urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", "")),
        "username": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "heartbeat": 5,
    }


def make_config(
    tmp: Path,
    hub: RunningHub,
    code: str,
    *,
    sinks: list[dict[str, Any]] = (),  # type: ignore[assignment]
    sources: list[dict[str, Any]] = (),  # type: ignore[assignment]
    via: tuple[str, int] | None = None,
    store: str = "connector.db",
) -> ConnectorConfig:
    raw = {
        "tenant": code,
        "system": "test-runtime",
        "broker": {**broker_section(hub.tenant_url(code), via), "inbox": hub.inbox(code)},
        "store": {"path": store},
        "sinks": list(sinks),
        "sources": list(sources),
    }
    return parse_config(raw, tmp)


def webhook_sink(hook: Webhook, **over: Any) -> dict[str, Any]:
    return {
        "kind": "webhook",
        "name": "case-system",
        "url": hook.url,
        "secret": SECRET.decode(),
        "initial_backoff_seconds": 0.05,
        "max_backoff_seconds": 0.3,
        "timeout_seconds": 5,
        **over,
    }


async def until(cond: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Running:
    """A runtime in a task; `stop()` cancels it like SIGTERM would."""

    def __init__(self, config: ConnectorConfig, **kw: Any) -> None:
        self.runtime = Runtime(config, reconnect_max=1.0, **kw)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Runtime:
        self.task = asyncio.create_task(self.runtime.run())
        ready = asyncio.create_task(self.runtime.ready.wait())
        done, _ = await asyncio.wait({self.task, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            ready.cancel()
            self.task.result()
        assert ready in done, "runtime did not start"
        return self.runtime

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@pytest.fixture
def webhook():
    hook = Webhook(SECRET).start()
    yield hook
    hook.stop()


def marked(marker: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: (
        body.get("type") == PING and str(body.get("data", {}).get("text", "")).startswith(marker)
    )


async def test_folder_source_to_webhook_once(hub: RunningHub, tmp_path: Path, webhook: Webhook) -> None:
    marker = f"folder-{uuid.uuid4().hex[:8]}"
    outgoing = tmp_path / "denhaag" / "outgoing"
    den_haag = make_config(
        tmp_path / "denhaag",
        hub,
        "GM0518",
        sources=[{"kind": "folder", "path": str(outgoing), "poll_seconds": 0.1}],
    )
    rotterdam = make_config(tmp_path / "rotterdam", hub, "GM0599", sinks=[webhook_sink(webhook)])
    async with Running(den_haag) as sender, Running(rotterdam):
        doc = {"type": PING, "recipients": ["GM0599"], "data": {"text": marker}, "subject": "case-1"}
        tmp = outgoing / ".drop.tmp"
        tmp.write_text(json.dumps(doc))
        tmp.rename(outgoing / "drop.json")
        await until(lambda: webhook.accepted_where(marked(marker)), what="webhook delivery")
        await asyncio.sleep(0.5)  # anything doubled would have arrived by now
        [delivery] = webhook.accepted_where(marked(marker))
        assert delivery.signed
        body = delivery.body
        assert body["data"] == {"text": marker}
        assert body["source"] == "urn:nld:cbs:GM0518:systeem:test-runtime"
        assert body["subject"] == "case-1" and body["sequencetype"] == "Integer"
        assert len(body["sequence"]) == 20 and int(body["sequence"]) >= 1  # the wire's zero-padded form
        assert (outgoing / "sent" / "drop.json").exists() and not (outgoing / "drop.json").exists()
        assert sender.folder_sources[0].sent == 1


async def test_http_source_batch_to_webhook_once_in_order(
    hub: RunningHub, tmp_path: Path, webhook: Webhook
) -> None:
    """An array POSTed to the HTTP source: every event reaches the recipient's webhook once,
    and a subject's events in the order of the array."""
    marker = f"batch-{uuid.uuid4().hex[:8]}"
    den_haag = make_config(
        tmp_path / "denhaag", hub, "GM0518", sources=[{"kind": "http", "host": "127.0.0.1", "port": 0}]
    )
    rotterdam = make_config(tmp_path / "rotterdam", hub, "GM0599", sinks=[webhook_sink(webhook)])
    docs = [
        {
            "type": PING,
            "recipients": ["GM0599"],
            "data": {"text": f"{marker}-{i}"},
            "subject": f"{marker}-case",
            "id": f"{marker}-{i}",
        }
        for i in range(12)
    ]
    async with Running(den_haag) as sender, Running(rotterdam):
        port = sender.http_sources[0].port
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"http://127.0.0.1:{port}/events", json=docs)
        assert response.status_code == 202, response.text
        assert response.json() == {"ids": [d["id"] for d in docs]}
        await until(lambda: len(webhook.accepted_where(marked(marker))) >= 12, what="12 deliveries")
        await asyncio.sleep(0.5)  # anything doubled would have arrived by now
        got = [d.body["data"]["text"] for d in webhook.accepted_where(marked(marker))]
        assert got == [d["data"]["text"] for d in docs]


async def test_malformed_source_file_is_refused_and_nothing_sent(hub: RunningHub, tmp_path: Path) -> None:
    outgoing = tmp_path / "outgoing"
    config = make_config(
        tmp_path, hub, "GM0307", sources=[{"kind": "folder", "path": str(outgoing), "poll_seconds": 0.1}]
    )
    outgoing.mkdir(parents=True)
    bad = {
        "too-long.json": ({"type": PING, "recipients": ["GM0957"], "data": {"text": "x" * 500}}, "data.text"),
        "no-recipients.json": ({"type": PING, "data": {"text": "hi"}}, "recipients"),
        "bad-recipient.json": ({"type": PING, "recipients": ["Rotterdam!"], "data": {}}, "recipients.0"),
        "unknown-type.json": (
            {"type": "nl.leerplicht.pupil.teleported", "recipients": ["GM0957"], "data": {}},
            "type",
        ),
        "extra-field.json": (
            {"type": PING, "recipients": ["GM0957"], "data": {"colour": "blue"}},
            "data.colour",
        ),
        "hub-only.json": (
            {"type": "nl.leerplicht.hub.receipt", "recipients": ["GM0957"], "data": {}},
            "type",
        ),
    }
    for name, (doc, _) in bad.items():
        (outgoing / name).write_text(json.dumps(doc))
    (outgoing / "not-json.json").write_text('{"type": "nl.leerplicht.ping", ')
    async with Running(config) as runtime:
        failed = outgoing / "failed"
        await until(lambda: len(list(failed.glob("*.error.txt"))) == len(bad) + 1, what="failed files")
        assert runtime.connector is not None and runtime.connector.stats.published == 0
    for name, (_, field) in bad.items():
        assert (failed / name).exists()
        text = (failed / f"{name}.error.txt").read_text()
        assert f"field: {field}\n" in text, text
        assert "nothing was sent" in text
        assert "xxxxxxxxxx" not in text and "blue" not in text  # the value is never echoed
    assert "field: (file)" in (failed / "not-json.json.error.txt").read_text()
    assert not list((outgoing / "sent").iterdir())


async def test_webhook_down_and_runtime_restarted_still_delivers_once(
    hub: RunningHub, tmp_path: Path, webhook: Webhook
) -> None:
    marker = f"down-{uuid.uuid4().hex[:8]}"
    config = make_config(tmp_path, hub, "GM0957", sinks=[webhook_sink(webhook)])
    sender = Connector("GM0307", hub.tenant_url("GM0307"), system="test-runtime")
    await sender.connect()
    webhook.down = True
    n = 5
    try:
        first = Running(config)
        runtime = await first.__aenter__()
        assert runtime.store is not None
        store = runtime.store
        for i in range(n):
            await sender.send(PING, {"text": f"{marker}-{i}"}, ["GM0957"])
        await until(lambda: webhook.refused() >= n, what="refused attempts")

        async def queued() -> int:
            return (await store.outbox_counts("case-system")).get("pending", 0)

        for _ in range(200):
            if await queued() >= n:
                break
            await asyncio.sleep(0.05)
        assert await queued() >= n  # in the outbox, acked on the broker
        await first.stop()
        refused_before = webhook.refused()
        assert not webhook.accepted_where(marked(marker))

        async with Running(config):
            await asyncio.sleep(0.5)
            assert webhook.refused() > refused_before  # the restarted runtime keeps trying
            webhook.down = False
            await until(lambda: len(webhook.counts(marked(marker))) == n, what="all deliveries")
            await asyncio.sleep(0.5)
        counts = webhook.counts(marked(marker))
        assert sorted(counts.values()) == [1] * n
        texts = sorted(d.body["data"]["text"] for d in webhook.accepted_where(marked(marker)))
        assert texts == sorted(f"{marker}-{i}" for i in range(n))
    finally:
        await sender.close()


@pytest.mark.faults
@pytest.mark.slow
async def test_broker_connection_cut_mid_stream_nothing_lost_nothing_doubled(
    hub: RunningHub, tmp_path: Path, webhook: Webhook
) -> None:
    marker = f"cut-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(hub.tenant_url("GM0957"))
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    await proxy.start()
    config = make_config(
        tmp_path, hub, "GM0957", sinks=[webhook_sink(webhook)], via=("127.0.0.1", proxy.port)
    )
    # The sender goes through the proxy too: its publishes must survive the cut.
    sender_url = hub.tenant_url("GM0307").replace(parts.netloc.rsplit("@", 1)[1], f"127.0.0.1:{proxy.port}")
    sender = Connector("GM0307", sender_url, system="test-runtime", heartbeat=5, reconnect_max=0.5)
    await sender.connect()
    n = 300
    try:
        async with Running(config) as runtime:
            sent = 0

            async def send_all() -> None:
                nonlocal sent
                for i in range(n):
                    await sender.send(PING, {"text": f"{marker}-{i:04d}"}, ["GM0957"])
                    sent += 1
                    await asyncio.sleep(0.01)

            sending = asyncio.create_task(send_all())
            await until(lambda: len(webhook.counts(marked(marker))) >= 20, what="deliveries flowing")
            # Mid-stream, twice: consumer, acks and publishes in flight are cut.
            await until(lambda: sent >= n // 3, what="a third sent")
            await proxy.disconnect_all()
            await until(lambda: sent >= 2 * n // 3, timeout=60, what="two thirds sent")
            await proxy.disconnect_all()
            await asyncio.wait_for(sending, 60)
            await until(lambda: len(webhook.counts(marked(marker))) == n, timeout=60, what="all delivered")
            await asyncio.sleep(0.5)
            assert runtime.connector is not None
            assert runtime.connector.stats.reconnects >= 2
        assert sender.stats.reconnects >= 1
        counts = webhook.counts(marked(marker))
        assert len(counts) == n and set(counts.values()) == {1}, counts.most_common(3)
        texts = {d.body["data"]["text"] for d in webhook.accepted_where(marked(marker))}
        assert texts == {f"{marker}-{i:04d}" for i in range(n)}
    finally:
        await sender.close()
        await proxy.close()
