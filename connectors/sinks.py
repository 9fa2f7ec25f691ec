"""Where received events go: the municipality's own system.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

Every sink receives the same JSON document per event (`delivery_body`): the envelope's
context attributes plus `data`, the opened and validated payload.

* `webhook` — POST to the case system, signed: `X-Inbeeld-Signature: sha256=<hex>` is
  HMAC-SHA256 under the shared secret over `<X-Inbeeld-Timestamp>.<body>`; `X-Inbeeld-Event-Id`
  lets the receiver drop a repeat. Durable: the runtime first writes the body to the outbox in
  the local store (then acks the broker); `OutboxWorker` delivers it with exponential backoff
  for `retry_days`, oldest first, logging `sink.stuck` once an item waits longer than
  `stuck_after_minutes` and `sink.gave_up` when it is abandoned. A refusal that retrying
  cannot change (HTTP 4xx other than 408 and 429) is tried `park_after` times, then the item
  is parked (`outbox.parked`, an alert) and the queue moves on; later items of the same
  `subject` (e.g. the next steps of a transfer) wait behind it until an operator retries or
  drops it (`inbeeld-connector outbox`, `connectors.outbox`). With [hub] configured, the
  worker tells the hub when delivery keeps failing or an item is parked, and when it
  recovers (`connectors.health_report`): the hub operator gets an alert.
* `folder` — one file per event, `<event id>.json.enc`, encrypted at rest under the keystore's
  at-rest secret (`connectors.sink_files`: shredding makes it unreadable; read one back with
  `inbeeld-connector sink show FILE`), written atomically (temp file, fsync, rename, fsync dir).
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
from connectors.at_rest import AtRestSecrets
from connectors.config import FolderSinkConfig, StdoutSinkConfig, WebhookSinkConfig
from connectors.health_report import WebhookHealth
from connectors.sink_files import file_name, seal_sink_file
from connectors.store import LocalStore, OutboxItem
from schemas import tracing
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
POLL_SECONDS = 5.0  # an idle outbox worker looks again at least this often


class SinkError(InbeeldError):
    """A delivery failed; `status` is the receiver's HTTP answer, if it gave one."""

    reason = "sink_error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def permanent(self) -> bool:
        """The receiver refused this event, and asking again will not change that: a 4xx other
        than 408 (timeout) and 429 (too many requests)."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in (408, 429)


def delivery_body(event: CloudEvent, payload: Payload | None) -> bytes:
    doc: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    doc["data"] = payload.model_dump(mode="json", exclude_none=True) if payload is not None else event.data
    return json.dumps(doc, ensure_ascii=False, sort_keys=True).encode()


def _traceparent_in(body: bytes) -> str | None:
    """The traceparent of a delivery body (our receive span), to parent the delivery's span."""
    try:
        value = json.loads(body).get("traceparent")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


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
        traceparent = tracing.current_traceparent()
        if traceparent is not None:  # the case system may continue the trace
            headers["traceparent"] = traceparent
        started = time.perf_counter()
        try:
            response = await self._http.post(self.config.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            metrics.webhook_done(self.name, started, ok=False)
            raise SinkError(f"webhook unreachable ({type(exc).__name__})") from None
        status = response.status_code
        metrics.webhook_done(self.name, started, ok=200 <= status < 300)
        if not 200 <= status < 300:
            # The standard phrase, not the receiver's: nothing it sends is repeated in our logs.
            phrase = httpx.codes.get_reason_phrase(status)
            raise SinkError(
                f"webhook answered HTTP {status}" + (f" {phrase}" if phrase else ""), status=status
            )

    async def close(self) -> None:
        await self._http.aclose()


class FolderSink(_Filter):
    durable = False

    def __init__(self, name: str, config: FolderSinkConfig, keystore: AtRestSecrets) -> None:
        self.name = name
        self.types = config.types
        self.path = config.path
        self._keystore = keystore

    async def deliver(self, event_id: str, body: bytes) -> None:
        name = file_name(event_id)
        sealed = seal_sink_file(self._keystore, name, body)
        try:
            await asyncio.to_thread(_atomic_write, self.path, name, sealed)
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
    """Delivers one durable sink's outbox, oldest first, backing off while it fails, parking
    what the receiver refuses for good."""

    def __init__(
        self,
        store: LocalStore,
        sink: WebhookSink,
        *,
        tenant: str | None = None,
        health: WebhookHealth | None = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.health = health  # tells the hub when delivery keeps failing, and when it recovers
        self.config = sink.config
        self.tenant = tenant
        self.wake = asyncio.Event()
        self.delivered = 0
        self.failures = 0
        self.parked = 0

    def _backoff(self, failures: int) -> float:
        base = min(
            self.config.initial_backoff_seconds * 2 ** min(failures - 1, 30), self.config.max_backoff_seconds
        )
        return float(base * random.uniform(0.8, 1.0))  # noqa: S311 - jitter, not crypto

    async def run(self) -> None:
        consecutive = 0
        while True:
            self.wake.clear()  # before looking, so an item added meanwhile wakes us
            await self._health()  # a retry or drop by `inbeeld-connector outbox` shows here
            items = await self.store.due(self.sink.name)
            if not items:
                await self._sleep(await self._until_next_due())
                continue
            parked_now: set[str] = set()  # subjects parked in this batch: their later items wait
            for item in items:
                if item.subject is not None and item.subject in parked_now:
                    continue
                span = tracing.start(
                    "connector.webhook",
                    traceparent=_traceparent_in(item.body),
                    kind=tracing.SpanKind.CLIENT,
                    attributes={"inbeeld.event.id": item.event_id, "inbeeld.sink": self.sink.name},
                )
                try:
                    with tracing.active(span):
                        await self.sink.deliver(item.event_id, item.body)
                except SinkError as exc:
                    tracing.fail(span, f"http_{exc.status}" if exc.status else "unreachable")
                    span.end()
                    self.failures += 1
                    if exc.permanent and item.refusals + 1 >= self.config.park_after:
                        consecutive = 0
                        await self._park(item, exc)  # reports this failure with the item parked
                        if item.subject is not None:
                            parked_now.add(item.subject)
                        continue
                    await self._health(failed=True, status=exc.status)
                    if exc.permanent:
                        consecutive = 0  # the receiver is up; it refuses this one
                        delay = self._backoff(item.refusals + 1)
                    else:
                        consecutive += 1
                        delay = self._backoff(consecutive)
                    await self._failed(item, exc, delay)
                    await self._sleep(delay, wakeable=False)
                    break
                span.end()
                consecutive = 0
                await self.store.mark_delivered(item.id)
                await self._health(failed=False, status=200)
                self.delivered += 1
                log.info(
                    "sink.delivered", sink=self.sink.name, event_id=item.event_id, attempts=item.attempts + 1
                )

    async def _park(self, item: OutboxItem, exc: SinkError) -> None:
        assert exc.status is not None
        reason = f"{exc.message}, {item.refusals + 1} times"
        held = await self.store.park(item.id, exc.status, reason)
        self.parked += 1
        # Reported after the item is parked, so the hub hears of the failure and the parked
        # item at once (one alert naming both), not of a failing webhook and then of a parking.
        await self._health(failed=True, status=exc.status)
        # The alert: metadata only (never the body, so never personal data).
        log.warning(
            "outbox.parked",
            tenant=self.tenant,
            sink=self.sink.name,
            event_id=item.event_id,
            type=item.event_type,
            subject=item.subject,
            status=exc.status,
            attempts=item.attempts + 1,
            held=held,
            item=item.id,
        )

    async def _health(self, *, failed: bool | None = None, status: int | None = None) -> None:
        if self.health is not None:
            await self.health.observe(self.sink.name, failed=failed, status=status)

    async def _failed(self, item: OutboxItem, exc: SinkError, delay: float) -> None:
        error = exc.message
        age = time.time() - item.since
        if age > self.config.retry_days * 86400:
            log.error(
                "sink.gave_up",
                sink=self.sink.name,
                event_id=item.event_id,
                attempts=item.attempts + 1,
                error=error,
            )
            await self.store.mark_failed(
                item.id, error, time.time(), status=exc.status, refused=exc.permanent, dead=True
            )
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
        await self.store.mark_failed(
            item.id, error, time.time() + delay, status=exc.status, refused=exc.permanent, stuck=stuck
        )

    async def _until_next_due(self) -> float:
        # Capped, so what `inbeeld-connector outbox retry|drop` changed (another process) is
        # seen within seconds.
        due = await self.store.next_due(self.sink.name)
        return POLL_SECONDS if due is None else min(max(due - time.time(), 0.0), POLL_SECONDS)

    async def _sleep(self, seconds: float, *, wakeable: bool = True) -> None:
        if not wakeable:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(self.wake.wait(), seconds)
        except TimeoutError:
            pass
