"""Where received events go: the municipality's own system.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

Every sink receives the same JSON document per event (`delivery_body`): the envelope's
context attributes plus `data`, the opened and validated payload.

* `webhook` — POST to the case system, signed: `X-Inbeeld-Signature: sha256=<hex>` is
  HMAC-SHA256 under the shared secret over `<X-Inbeeld-Timestamp>.<body>`; `X-Inbeeld-Event-Id`
  lets the receiver drop a repeat. Durable: the runtime first writes the body to the outbox in
  the local store (then acks the broker); `OutboxWorker` delivers it with exponential backoff
  for `retry_days`, oldest first, logging `sink.stuck` once an item waits longer than
  `stuck_after_minutes` and `sink.gave_up` when it is abandoned.
* `folder` — one file per event, written atomically (temp file, fsync, rename, fsync dir).
* `stdout` — one JSON line per event.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import httpx
import structlog

from connectors import metrics
from connectors.config import FolderSinkConfig, StdoutSinkConfig, WebhookSinkConfig
from connectors.store import LocalStore, OutboxItem
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError
from schemas.events import Payload

__all__ = [
    "SIGNATURE_HEADER",
    "FolderSink",
    "OutboxWorker",
    "Sink",
    "SinkError",
    "StdoutSink",
    "WebhookSink",
    "delivery_body",
    "sign",
    "verify_signature",
]

log = structlog.get_logger("inbeeld.connector.sinks")

SIGNATURE_HEADER = "X-Inbeeld-Signature"
TIMESTAMP_HEADER = "X-Inbeeld-Timestamp"
EVENT_ID_HEADER = "X-Inbeeld-Event-Id"


class SinkError(InbeeldError):
    reason = "sink_error"


def delivery_body(event: CloudEvent, payload: Payload | None) -> bytes:
    doc: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    doc["data"] = payload.model_dump(mode="json", exclude_none=True) if payload is not None else event.data
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """For the receiving system (and tests): constant-time check of the signature header."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class Sink(Protocol):
    name: str
    durable: bool  # True: delivered from the outbox, after the broker ack

    def accepts(self, event_type: str) -> bool: ...

    async def deliver(self, event_id: str, body: bytes) -> None: ...

    async def close(self) -> None: ...


class _Filter:
    types: list[str]

    def accepts(self, event_type: str) -> bool:
        return any(event_type.startswith(t[:-1]) if t.endswith("*") else event_type == t for t in self.types)

    async def close(self) -> None:
        return None


class WebhookSink(_Filter):
    durable = True

    def __init__(self, name: str, config: WebhookSinkConfig, secret: bytes) -> None:
        self.name = name
        self.config = config
        self.types = config.types
        self._secret = secret
        self._http = httpx.AsyncClient(timeout=config.timeout_seconds)

    async def deliver(self, event_id: str, body: bytes) -> None:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        started = time.perf_counter()
        try:
            response = await self._http.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            metrics.webhook_done(self.name, started, ok=False)
            raise SinkError(f"webhook unreachable ({type(exc).__name__})") from None
        metrics.webhook_done(self.name, started, ok=200 <= response.status_code < 300)
        if not 200 <= response.status_code < 300:
            raise SinkError(f"webhook answered HTTP {response.status_code}")

    async def close(self) -> None:
        await self._http.aclose()


class FolderSink(_Filter):
    durable = False

    def __init__(self, name: str, config: FolderSinkConfig) -> None:
        self.name = name
        self.types = config.types
        self.path = config.path

    async def deliver(self, event_id: str, body: bytes) -> None:
        try:
            await asyncio.to_thread(_atomic_write, self.path, event_id.replace(":", "_") + ".json", body)
        except OSError as exc:
            raise SinkError(f"cannot write to {self.path} ({exc.strerror})") from None


def _atomic_write(directory: Path, name: str, body: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class StdoutSink(_Filter):
    durable = False

    def __init__(self, name: str, config: StdoutSinkConfig) -> None:
        self.name = name
        self.types = config.types

    async def deliver(self, event_id: str, body: bytes) -> None:
        sys.stdout.write(body.decode() + "\n")
        sys.stdout.flush()


class OutboxWorker:
    """Delivers one durable sink's outbox, oldest first, backing off while it fails."""

    def __init__(self, store: LocalStore, sink: WebhookSink) -> None:
        self.store = store
        self.sink = sink
        self.config = sink.config
        self.wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0

    def _backoff(self, failures: int) -> float:
        base = min(
            self.config.initial_backoff_seconds * 2 ** min(failures - 1, 30), self.config.max_backoff_seconds
        )
        return float(base * random.uniform(0.8, 1.0))  # noqa: S311 - jitter, not crypto

    async def run(self) -> None:
        consecutive = 0
        while True:
            self.wake.clear()  # before looking, so an item added meanwhile wakes us
            items = await self.store.due(self.sink.name)
            if not items:
                await self._sleep(await self._until_next_due())
                continue
            for item in items:
                try:
                    await self.sink.deliver(item.event_id, item.body)
                except SinkError as exc:
                    consecutive += 1
                    self.failures += 1
                    delay = self._backoff(consecutive)
                    await self._failed(item, exc.message, delay)
                    await self._sleep(delay, wakeable=False)
                    break
                consecutive = 0
                await self.store.mark_delivered(item.id)
                self.delivered += 1
                log.info(
                    "sink.delivered", sink=self.sink.name, event_id=item.event_id, attempts=item.attempts + 1
                )

    async def _failed(self, item: OutboxItem, error: str, delay: float) -> None:
        age = time.time() - item.created_at
        if age > self.config.retry_days * 86400:
            log.error(
                "sink.gave_up",
                sink=self.sink.name,
                event_id=item.event_id,
                attempts=item.attempts + 1,
                error=error,
            )
            await self.store.mark_failed(item.id, error, time.time(), dead=True)
            return
        stuck = age > self.config.stuck_after_minutes * 60 and not await self.store.stuck_reported(item.id)
        if stuck:
            log.error(
                "sink.stuck", sink=self.sink.name, event_id=item.event_id, since_seconds=int(age), error=error
            )
        else:
            log.warning(
                "sink.retry", sink=self.sink.name, event_id=item.event_id, error=error, delay=round(delay, 2)
            )
        await self.store.mark_failed(item.id, error, time.time() + delay, stuck=stuck)

    async def _until_next_due(self) -> float:
        due = await self.store.next_due(self.sink.name)
        return 60.0 if due is None else max(due - time.time(), 0.0)

    async def _sleep(self, seconds: float, *, wakeable: bool = True) -> None:
        if not wakeable:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass
