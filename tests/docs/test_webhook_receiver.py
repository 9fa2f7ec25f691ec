"""The sample receiver in docs/examples against the connector's real webhook sink: the
contract docs/webhooks.md describes, signing and repeats included."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from connectors.config import WebhookSinkConfig
from connectors.sinks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SinkError,
    WebhookSink,
    delivery_body,
    sign,
)
from schemas.envelope import CloudEvent
from schemas.events import Ping

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "webhook_receiver.py"
SECRET = b"a shared secret of the case system and the connector"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webhook_receiver", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Receiver:
    url: str
    processed: list[dict[str, Any]] = field(default_factory=list)
    fail_next: bool = False


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    module = _load()
    box = Receiver(url="")

    def handle(event: dict[str, Any]) -> None:
        if box.fail_next:
            box.fail_next = False
            raise RuntimeError("the case system is down")
        box.processed.append(event)

    server = module.make_server(0, SECRET, str(tmp_path / "seen.db"), handle)
    box.url = f"http://127.0.0.1:{server.server_address[1]}/inbeeld"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield box
    server.shutdown()
    server.server_close()


def _sink(url: str, secret: bytes = SECRET) -> WebhookSink:
    config = WebhookSinkConfig(kind="webhook", url=url, secret=secret.decode())
    return WebhookSink("zaaksysteem", config, config.resolved_secret("sinks.0"))


def _event(
    text: str = "hello", *, source: str = "urn:nld:cbs:GM0599:systeem:test", event_id: str | None = None
) -> tuple[str, bytes]:
    extra = {"id": event_id} if event_id else {}
    event = CloudEvent(source=source, type="nl.leerplicht.ping", recipients=["GM0518"], **extra)
    return event.id, delivery_body(event, Ping(text=text))


class _Tamper(httpx.AsyncBaseTransport):
    """A man in the middle: changes the body after the sink signed it."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = (await request.aread()).replace(b"hello", b"HELLO")
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"content-length"]
        return await self.inner.handle_async_request(
            httpx.Request(request.method, request.url, headers=headers, content=body)
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_signed_delivery_is_accepted_and_processed(receiver: Receiver) -> None:
    sink = _sink(receiver.url)
    event_id, body = _event()
    try:
        await sink.deliver(event_id, body)
    finally:
        await sink.close()
    assert [e["id"] for e in receiver.processed] == [event_id]
    assert receiver.processed[0]["data"] == {"text": "hello"}
    assert receiver.processed[0]["type"] == "nl.leerplicht.ping"


async def test_a_wrong_secret_is_refused(receiver: Receiver) -> None:
    sink = _sink(receiver.url, secret=b"not the shared secret")
    event_id, body = _event()
    try:
        with pytest.raises(SinkError, match="HTTP 401"):
            await sink.deliver(event_id, body)
    finally:
        await sink.close()
    assert receiver.processed == []


async def test_a_tampered_body_is_refused(receiver: Receiver) -> None:
    sink = _sink(receiver.url)
    # The sink's own client, given a transport that alters the body in transit.
    await sink._http.aclose()
    sink._http = httpx.AsyncClient(transport=_Tamper())
    event_id, body = _event("hello")
    try:
        with pytest.raises(SinkError, match="HTTP 401"):
            await sink.deliver(event_id, body)
    finally:
        await sink.close()
    assert receiver.processed == []


async def test_a_stale_timestamp_is_refused_even_when_signed(receiver: Receiver) -> None:
    event_id, body = _event()
    old = str(int(time.time()) - 3600)
    headers = {EVENT_ID_HEADER: event_id, TIMESTAMP_HEADER: old, SIGNATURE_HEADER: sign(SECRET, old, body)}
    async with httpx.AsyncClient() as client:
        response = await client.post(receiver.url, content=body, headers=headers)
    assert response.status_code == 401
    assert receiver.processed == []


async def test_a_repeat_is_acknowledged_but_processed_once(receiver: Receiver) -> None:
    sink = _sink(receiver.url)
    event_id, body = _event()
    try:
        await sink.deliver(event_id, body)
        await sink.deliver(event_id, body)  # e.g. the first answer came after the sink's timeout
        other_id, other = _event("hello again")
        await sink.deliver(other_id, other)
    finally:
        await sink.close()
    assert [e["id"] for e in receiver.processed] == [event_id, other_id]


async def test_a_failed_processing_is_not_recorded_so_the_retry_is_processed(receiver: Receiver) -> None:
    sink = _sink(receiver.url)
    event_id, body = _event()
    receiver.fail_next = True
    try:
        with pytest.raises(SinkError, match="HTTP 500"):
            await sink.deliver(event_id, body)
        await sink.deliver(event_id, body)  # the outbox worker's next attempt
    finally:
        await sink.close()
    assert [e["id"] for e in receiver.processed] == [event_id]


async def test_the_same_id_from_another_source_is_another_event(receiver: Receiver) -> None:
    sink = _sink(receiver.url)
    first_id, first = _event(event_id="llz-2025-000042")
    _, second = _event(source="urn:nld:cbs:GM0307:systeem:test", event_id="llz-2025-000042")
    try:
        await sink.deliver(first_id, first)
        await sink.deliver(first_id, second)
        await sink.deliver(first_id, second)  # and that one's repeat is dropped
    finally:
        await sink.close()
    assert [e["source"] for e in receiver.processed] == [
        "urn:nld:cbs:GM0599:systeem:test",
        "urn:nld:cbs:GM0307:systeem:test",
    ]
