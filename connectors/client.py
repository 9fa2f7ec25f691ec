"""The connector's AMQP client (the SDK): publish to the hub's ingress, consume the inbox.

Contract, per DESIGN section 5 (at-least-once transport + idempotent consumer):

* Every publish carries `user_id` = the tenant's broker user (the broker refuses a spoofed
  one), is persistent, and waits for a publisher confirm within `publish_timeout`; a publish
  that fails or hangs (a broker outage can make one hang) is retried on a fresh connection
  until `publish_deadline`, with the same event id, so the hub's ledger drops a repeat.
* The connection is our own, not aio-pika's robust one: robust objects are held weakly and
  consumers are not always restored after a broker restart. Here one place (`_ensure`)
  reconnects with capped, jittered backoff (`connectors.backoff`; a broker that refuses us,
  `BrokerAccessRefused`, is logged once, not per attempt), and `inbox()` re-opens its
  channel and consumer itself, backing off too.
* Connections carry a `connection_name` (default `inbeeld-connector <tenant>`), which the
  broker's management UI shows.
* `inbox()` yields `InboxMessage`s: parsed (nesting bounded first: `too_deep`),
  de-duplicated by `source`+`id` (in the local store when one is given, else in memory),
  opened by the sealer when one is given — which verifies the signature over the envelope's
  id, type, source, recipients, subject and correlationid, so a copy with any of them
  changed is rejected, not yielded (else a payload of protection "none" is validated) — and
  checked for gaps in the hub's per-tenant
  `sequence` (logged, counted, `on_gap` called: a gap means resync). A number may arrive
  late — with several hub routers (competing consumers) copies can overtake each other — so a
  missing number is only a gap when it has not come within `gap_grace` seconds (reported on
  the next message or when the inbox is idle; any still pending at `close()` are reported
  then). With `resync` given (the runtime passes `connectors.resync.ask_resync`, the hub's
  `POST /inbox/resync`), a gap makes the connector ask the hub by itself to publish the
  missing numbers again, retrying while the hub cannot be reached; the copies come again
  unchanged, and any it had already are dropped by their id. A message that cannot be
  parsed or opened is rejected (dead-lettered by the hub's topology), never yielded.
* A signed or sealed event from a tenant that the sealer cannot open (bad signature, not
  decryptable with our keys, invalid inside) is also reported to its sender: a
  `nl.leerplicht.delivery.failed` with the event's id, type and the reason code, never any
  content (`report_failures`, on by default). The hub checks that we received that event and
  marks the step (a transfer shows `delivery_failed`); the sender's connector logs it.
* The inbox is the queue the hub named for this tenant (`inbox_name`, from the tenant's
  provisioning or the hub's `GET /tenants/me`): its name is unguessable, so other tenants
  cannot even probe it. It has one active consumer: a second instance of the same tenant
  consumes as a standby, receives nothing while the first is connected, and says so
  (`connector.standby`, `inbox_status()`); it takes over when the first goes away.
  An inbox the broker does not know or refuses raises `InboxUnavailable` (a wrong or
  outdated name), rather than being retried for ever.
* `ack()` remembers the event (dedupe), sends the optional receipt, then acks; `reject()`
  dead-letters (or requeues). A message whose channel died cannot be acked: the broker
  redelivers it and de-duplication drops the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import ssl
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage
from aio_pika.connection import make_url
from aiormq.exceptions import (
    AuthenticationError,
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    ConnectionNotAllowed,
    InvalidFrameError,
    ProbableAuthenticationError,
)

from connectors import metrics
from connectors.backoff import Backoff
from schemas import tracing
from schemas.amqp_addresses import node_urls, shown_addresses
from schemas.envelope import CONTENT_TYPE, CloudEvent, parse_event, source_urn
from schemas.errors import ContractError, CryptoError, Gone, InbeeldError, RoutingRefused
from schemas.events import EVENTS, DeliveryFailed, Payload, Receipt, spec_for
from schemas.names import INBOX_PREFIX, INGRESS, RECEIPT_TYPE
from schemas.processing_log import (
    STATUS_ERROR,
    STATUS_OK,
    ProcessingRecord,
    data_subject_id,
    legal_basis_of,
    processing_activity_id,
)
from schemas.tls import handshake_failure, presents_certificate
from schemas.validation import validate_payload

__all__ = [
    "INBOX_PREFIX",
    "INGRESS",
    "RECEIPT_TYPE",
    "BrokerAccessRefused",
    "Connector",
    "ConnectorError",
    "ConnectorStats",
    "EventSealer",
    "InboxMessage",
    "InboxState",
    "InboxStatus",
    "InboxUnavailable",
    "MemoryInboxState",
]

log = structlog.get_logger("inbeeld.connector")

DELIVERY_FAILED_TYPE = "nl.leerplicht.delivery.failed"
# What makes an event unopenable for good (worth telling its sender); a directory that cannot
# be asked or a sender it does not know (yet) is not reported.
_UNOPENABLE = (CryptoError, ContractError, RoutingRefused)
_RECEIPT_NS = uuid.UUID("0b8f3f3e-6a47-4a2f-8f0e-5f1c2d3b4a59")
GAP_GRACE = 10.0  # seconds a missing inbox sequence number may still arrive late
MAX_PENDING = 10_000  # a larger jump is reported at once
# Errors that mean "this connection or channel is gone / stuck": reconnect and retry.
_TRANSIENT = (aio_pika.exceptions.AMQPError, ConnectionError, OSError, RuntimeError, TimeoutError)
# The broker answered and said no: a wrong user or password (403 ACCESS_REFUSED), or no access
# to the vhost, e.g. a suspended tenant or its connection limit reached (530 NOT_ALLOWED).
_REFUSED = (ProbableAuthenticationError, AuthenticationError, ConnectionNotAllowed)


class ConnectorError(InbeeldError):
    reason = "connector_error"


class BrokerAccessRefused(ConnectorError):
    """The broker answered and refused us: a wrong user or password, no access to the vhost
    (a suspended tenant), or the tenant's connection limit reached. Not a network fault:
    trying again helps only once the configuration or the hub's operator fixes it."""

    reason = "broker_access_refused"


class _NodeAway(Exception):
    """One node of a cluster did not answer; the next may (never leaves `_open`)."""


class InboxUnavailable(ConnectorError):
    """The broker does not know the inbox or will not let us read it: a wrong or outdated
    `inbox_name` (the hub moved it), or revoked access. Reconnecting will not help."""

    reason = "inbox_unavailable"


@dataclass(frozen=True)
class InboxStatus:
    """What the broker says about our inbox: messages waiting and active consumers. With
    one active consumer per inbox, `consumers > 0` before we consume means another instance
    of this tenant is running and this one would stand by."""

    messages: int
    consumers: int


class EventSealer(Protocol):
    """What seals outgoing events and opens incoming ones; `connectors.sealing.Sealer` is the
    one over a keystore and the hub's key directory."""

    async def seal(self, event: CloudEvent) -> CloudEvent: ...

    async def open(self, event: CloudEvent) -> Payload: ...


class InboxState(Protocol):
    """What the SDK keeps between messages: seen events and the last inbox sequence.
    `connectors.store.LocalStore` persists it; `MemoryInboxState` is the default."""

    async def seen(self, source: str, event_id: str) -> bool: ...

    async def remember(self, event: CloudEvent) -> None: ...

    async def last_sequence(self) -> int | None: ...

    async def set_last_sequence(self, sequence: int) -> None: ...


class ProcessingLog(Protocol):
    """Where the SDK records each event it sends and receives (Logboek dataverwerkingen);
    `connectors.store.LocalStore` keeps it, the data subject encrypted at rest."""

    async def log_processing(self, record: ProcessingRecord) -> None: ...


# Inside `Connector.publish_many`: the processing-log records of its publishes, written
# together in one transaction once they have all settled (None: each is written at once).
_batch_records: contextvars.ContextVar[list[ProcessingRecord] | None] = contextvars.ContextVar(
    "inbeeld_batch_records", default=None
)


class MemoryInboxState:
    """In-process state: the last `limit` event keys and the last sequence."""

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._limit = limit
        self._sequence: int | None = None

    async def seen(self, source: str, event_id: str) -> bool:
        return (source, event_id) in self._seen

    async def remember(self, event: CloudEvent) -> None:
        self._seen[(event.source, event.id)] = None
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)

    async def last_sequence(self) -> int | None:
        return self._sequence

    async def set_last_sequence(self, sequence: int) -> None:
        self._sequence = sequence


@dataclass
class ConnectorStats:
    published: int = 0
    received: int = 0
    duplicates: int = 0
    gaps: int = 0
    reordered: int = 0  # numbers that came late, within gap_grace (not gaps)
    resyncs: int = 0  # gaps the hub was asked, successfully, to fill
    rejected: int = 0
    reconnects: int = 0


GapCallback = Callable[[int, int], Awaitable[None] | None]
# Asks the hub to publish inbox sequence numbers first..last (inclusive) again.
ResyncCallback = Callable[[int, int], Awaitable[None]]


@dataclass
class InboxMessage:
    """One event from the inbox. Call `ack()` once it is safely processed, or `reject()`.

    `event` is the envelope as received (its `data` still sealed for sealed types);
    `payload` the opened and validated payload, or None for a signed/sealed event read
    without a sealer."""

    event: CloudEvent
    _raw: AbstractIncomingMessage = field(repr=False)
    payload: Payload | None = None
    _connector: Connector | None = field(default=None, repr=False)
    _settled: bool = field(default=False, repr=False)

    async def ack(self) -> None:
        if self._settled:
            return
        self._settled = True
        if self._connector is not None:
            await self._connector._after_processing(self.event)
        await _settle(self._raw.ack())

    async def reject(self, requeue: bool = False) -> None:
        if self._settled:
            return
        self._settled = True
        await _settle(self._raw.reject(requeue=requeue))


async def _settle(op: Awaitable[None]) -> None:
    try:
        await op
    except _TRANSIENT as exc:
        # The channel died: the broker will redeliver, and de-duplication drops the copy.
        log.info("connector.settle_lost", error=type(exc).__name__)


class Connector:
    """A tenant's client of the hub. Use as `async with Connector(...) as c:`.

    `send()` builds, validates (protection "none", no sealer) or seals, and publishes an
    event; `publish()` sends a ready-made one (sealed first when a sealer is given);
    `inbox()` yields what arrives. `stats` counts what happened; `receipts` sends
    `nl.leerplicht.receipt` to the sender of each processed event."""

    def __init__(
        self,
        tenant: str,
        amqp_url: str,
        *,
        inbox_name: str | None = None,
        system: str = "connector",
        oin: str | None = None,
        publish_timeout: float = 10.0,
        publish_deadline: float = 120.0,
        sealer: EventSealer | None = None,
        state: InboxState | None = None,
        dedupe: bool = True,
        receipts: bool = False,
        report_failures: bool = True,
        on_gap: GapCallback | None = None,
        gap_grace: float = GAP_GRACE,
        resync: ResyncCallback | None = None,
        heartbeat: int = 15,
        reconnect_max: float = 30.0,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        connection_name: str | None = None,
        processing_log: ProcessingLog | None = None,
    ) -> None:
        self.tenant = tenant
        self.processing_log = processing_log
        # What the broker's management UI shows for our connections (`client_properties`).
        self.connection_name = connection_name or f"inbeeld-connector {tenant}"
        self.amqp_url = amqp_url
        # One URL per node of a cluster (or the one URL); `_node`: where the next attempt starts.
        try:
            urls = node_urls(amqp_url)
        except ValueError as exc:
            raise ConnectorError(f"amqp_url {shown_addresses(amqp_url)}: {exc}") from None
        self._node_urls = urls if len(urls) > 1 else [amqp_url]
        self._node = 0
        self.ssl_context = ssl_context  # for amqps://: CA bundle, client certificate (schemas.tls)
        self.inbox_name = inbox_name  # needed by inbox() only; a sender may leave it out
        self.standby = False  # another instance held the inbox when we started consuming
        self.username = unquote(urlsplit(amqp_url).username or "")
        self.source = source_urn(system=system, oin=oin, cbs=None if oin else tenant)
        self.publish_timeout = publish_timeout
        self.publish_deadline = publish_deadline
        self.sealer = sealer
        self.state: InboxState = state if state is not None else MemoryInboxState()
        self.dedupe = dedupe
        self.receipts = receipts
        self.report_failures = report_failures
        self.on_gap = on_gap
        self.gap_grace = gap_grace
        self._pending: dict[int, float] = {}  # sequence numbers skipped -> when first missed
        self.resync = resync
        self._resyncs: set[asyncio.Task[None]] = set()
        self._closing = False
        self.heartbeat = heartbeat
        self.reconnect_max = reconnect_max
        self.connect_timeout = connect_timeout
        self.stats = ConnectorStats()
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._ingress: AbstractExchange | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> Connector:
        await self.connect()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- connection ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def connect(self) -> None:
        """Connect once; `ConnectorError` if the broker cannot be reached or refuses us."""
        self._closed = False
        async with self._lock:
            await self._open()

    async def _open(self) -> None:
        """Connect to the first node that answers, starting after the one we were last on
        (a cluster's nodes in `amqp_url`, `schemas.amqp_addresses`): when our node goes
        away, the next attempt goes to another. A refusal is the cluster's answer and is
        raised at once; a node that does not answer passes the attempt to the next."""
        urls = self._node_urls
        for k in range(len(urls)):
            i = (self._node + k) % len(urls)
            try:
                await self._open_node(urls[i], last=k == len(urls) - 1)
            except _NodeAway:
                continue
            self._node = (i + 1) % len(urls) if len(urls) > 1 else 0
            return

    async def _open_node(self, url: str, *, last: bool) -> None:
        # Not aio_pika.connect: a connection that fails to open must be closed here, or its
        # __del__ later schedules close() on whatever loop the garbage collector runs under.
        connection = aio_pika.Connection(
            make_url(url, heartbeat=self.heartbeat),
            ssl_context=self.ssl_context,
            client_properties={"connection_name": self.connection_name},
        )
        try:
            with _library_quiet():  # the failure is ours to report, once, as one line
                await asyncio.wait_for(connection.connect(timeout=self.connect_timeout), self.connect_timeout)
        except BaseException as exc:
            await _quietly(connection.close())
            why = _refusal(exc)
            if why is not None:
                raise BrokerAccessRefused(
                    f"the hub's broker at {self.broker_address} refused user {self.username} ({why}): "
                    "check [broker] username, password and the vhost in url, and that the hub "
                    "provisioned this tenant and has not suspended it"
                ) from None
            if not isinstance(exc, (*_TRANSIENT, aio_pika.exceptions.AMQPConnectionError)):
                raise
            if self.amqp_url.startswith("amqps:") and (tls_why := self._tls_failure(exc)):
                raise ConnectorError(tls_why) from None
            if not last:
                raise _NodeAway from None
            raise ConnectorError(
                f"cannot reach the hub's broker at {self.broker_address} ({type(exc).__name__})"
            ) from None
        try:
            channel = await connection.channel(publisher_confirms=True)
            # get_exchange(ensure=False): a tenant may not declare anything, not even passively.
            ingress = await channel.get_exchange(INGRESS, ensure=False)
        except BaseException:
            await _quietly(connection.close())
            raise
        self._connection, self._channel, self._ingress = connection, channel, ingress

    def _tls_failure(self, exc: BaseException) -> str | None:
        where = f"the hub's broker at {self.broker_address}"
        return handshake_failure(exc, where, client_cert=presents_certificate(self.ssl_context))

    @property
    def broker_address(self) -> str:
        """host:port of the broker (of every node of a cluster), for messages (never the
        credentials)."""
        return shown_addresses(self.amqp_url)

    async def _ensure(self) -> AbstractConnection:
        """The live connection, reconnecting with backoff until it is back (or we close). A
        refusal is logged once per outage; every attempt only at debug level."""
        backoff = Backoff(0.2, self.reconnect_max)
        refused = False
        while True:
            if self._closed:
                raise ConnectorError("connector is closed")
            async with self._lock:
                conn = self._connection
                if conn is not None and not conn.is_closed and self._channel is not None:
                    if not self._channel.is_closed:
                        return conn
                if conn is not None:
                    self._connection = None
                    await _quietly(conn.close())
                delay = backoff.next()
                try:
                    await self._open()
                    self.stats.reconnects += 1
                    log.info("connector.reconnected", tenant=self.tenant)
                    assert self._connection is not None
                    return self._connection
                except BrokerAccessRefused as exc:
                    if not refused:
                        log.error("connector.broker_access_refused", tenant=self.tenant, error=exc.message)
                    refused = True
                    log.debug("connector.reconnect_failed", tenant=self.tenant, delay=round(delay, 2))
                except ConnectorError as exc:
                    log.warning(
                        "connector.reconnect_failed",
                        tenant=self.tenant,
                        error=exc.message,
                        delay=round(delay, 2),
                    )
            await asyncio.sleep(delay)

    async def _invalidate(self, conn: AbstractConnection | None) -> None:
        async with self._lock:
            if conn is not None and self._connection is conn:
                self._connection = None
                await _quietly(conn.close())

    async def close(self) -> None:
        self._closing = True  # what is reported now is not asked for again (we are going)
        with contextlib.suppress(Exception):  # numbers still missing will not come to us now
            await self._report_overdue(None)
        for task in list(self._resyncs):
            task.cancel()
        if self._resyncs:
            await asyncio.gather(*self._resyncs, return_exceptions=True)
        self._closed = True
        async with self._lock:
            if self._connection is not None:
                await _quietly(self._connection.close())
                self._connection = None

    # -- sending ------------------------------------------------------------------------------

    def event(
        self,
        event_type: str,
        data: Any,
        recipients: Sequence[str],
        *,
        subject: str | None = None,
        correlationid: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CloudEvent:
        spec = EVENTS.get(event_type)
        return CloudEvent(
            source=self.source,
            type=event_type,
            recipients=list(recipients),
            subject=subject,
            correlationid=correlationid,
            data=data,
            **({"dataschema": spec.dataschema} if spec and not (extra and "dataschema" in extra) else {}),
            **(extra or {}),
        )

    async def publish(self, event: CloudEvent) -> CloudEvent:
        """Publish a ready-made event (sealed first when a sealer is given), confirmed by the
        broker, retried across reconnects until `publish_deadline`. Returns what was sent."""
        spec = EVENTS.get(event.type)
        subject = data_subject_id(event.data)  # read before sealing; only our own log keeps it
        basis = legal_basis_of(event.data)
        started = time.time()
        span = tracing.start(
            "connector.publish", kind=tracing.SpanKind.PRODUCER, attributes=_span_attrs(event)
        )
        if event.traceparent is None:  # the router's spans become children of this one
            event = event.model_copy(update={"traceparent": tracing.traceparent_of(span)})
        status = STATUS_ERROR
        try:
            with tracing.active(span):
                if self.sealer is not None and spec is not None and spec.protection != "none":
                    event = await self.sealer.seal(event)
                sent = await self._deliver(event)
            status = STATUS_OK
            return sent
        except InbeeldError as exc:
            tracing.fail(span, exc.reason)
            raise
        finally:
            span.end()
            await self._log(span, f"send {event.short_type}", status, started, event, subject, None, basis)

    async def publish_many(self, events: Sequence[CloudEvent], *, in_flight: int = 64) -> list[CloudEvent]:
        """Publish several events with their confirms outstanding together (at most
        `in_flight` at a time) rather than one after the other. Events of the same `subject`
        go one after the other, in the order given; the others concurrently. Returns what was
        sent, in the order given; raises the first failure once every publish has settled
        (the events before it in its subject's order, and those of other subjects, may have
        been sent). Their processing-log records are written together, in one transaction
        where the log can (`log_processing_many`), once every publish has settled."""
        gate = asyncio.Semaphore(in_flight)
        sent: list[CloudEvent | None] = [None] * len(events)
        lanes: dict[str | int, list[int]] = {}
        for i, event in enumerate(events):
            lanes.setdefault(event.subject if event.subject is not None else i, []).append(i)

        async def lane(indexes: list[int]) -> None:
            for i in indexes:
                async with gate:
                    sent[i] = await self.publish(events[i])

        records: list[ProcessingRecord] = []
        token = _batch_records.set(records)  # the lanes' tasks copy this context: same list
        try:
            results = await asyncio.gather(*(lane(ix) for ix in lanes.values()), return_exceptions=True)
        finally:
            _batch_records.reset(token)
            await self._write_records(records)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [e for e in sent if e is not None]

    async def _log(
        self,
        span: tracing.Span,
        name: str,
        status: int,
        started: float,
        event: CloudEvent,
        subject: str | None,
        parent: str | None,
        legal_basis: tuple[str, str] | None = None,
    ) -> None:
        ids = tracing.ids_of(span)
        if self.processing_log is None or ids is None:
            return
        kind, code = event.source_party
        counterpart = (
            (event.recipients[0] if len(event.recipients) == 1 else None)
            if name.startswith("send")
            else (code if kind == "cbs" else None)
        )
        record = ProcessingRecord(
            trace_id=ids[0],
            span_id=ids[1],
            parent_span_id=parent,
            name=name[:100],
            status=status,
            start=started,
            end=time.time(),
            processing_activity_id=processing_activity_id(event.type),
            event_id=event.id,
            event_type=event.type,
            counterpart=counterpart,
            data_subject_id=subject,
            about=event.subject,
            legal_basis=legal_basis,
        )
        batch = _batch_records.get()
        if batch is not None:  # publish_many writes them together
            batch.append(record)
            return
        try:
            await self.processing_log.log_processing(record)
        except Exception as exc:  # the log must not lose the event; say so loudly
            log.error("connector.processing_log_failed", event_id=event.id, error=type(exc).__name__)

    async def _write_records(self, records: list[ProcessingRecord]) -> None:
        if not records or self.processing_log is None:
            return
        many = getattr(self.processing_log, "log_processing_many", None)
        try:
            if many is not None:
                await many(records)
                return
        except Exception as exc:  # the log must not lose the events; say so loudly
            log.error(
                "connector.processing_log_failed",
                event_ids=[r.event_id for r in records],
                error=type(exc).__name__,
            )
            return
        for record in records:
            try:
                await self.processing_log.log_processing(record)
            except Exception as exc:
                error = type(exc).__name__
                log.error("connector.processing_log_failed", event_id=record.event_id, error=error)

    async def _deliver(self, event: CloudEvent) -> CloudEvent:
        if self._closed or self._ingress is None:
            raise ConnectorError("connector is not connected")
        body = event.to_bytes()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_deadline
        delay = 0.2
        while True:
            conn = await asyncio.wait_for(self._ensure(), max(deadline - loop.time(), 0.1))
            ingress = self._ingress
            try:
                assert ingress is not None
                message = aio_pika.Message(
                    body,
                    content_type=CONTENT_TYPE,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=event.id,
                    type=event.type,
                    user_id=self.username,
                )
                await asyncio.wait_for(ingress.publish(message, routing_key=event.type), self.publish_timeout)
                self.stats.published += 1
                return event
            except _TRANSIENT as exc:
                await self._invalidate(conn)
                if loop.time() + delay >= deadline:
                    raise ConnectorError(
                        f"publishing {event.type} {event.id} failed for {self.publish_deadline:.0f}s "
                        f"({type(exc).__name__})"
                    ) from None
                log.warning("connector.publish_retry", event_id=event.id, error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def send(self, event_type: str, data: Any, recipients: Sequence[str], **kwargs: Any) -> CloudEvent:
        """Build and publish an event. A payload of protection "none" is validated first
        (`SchemaInvalid` naming the field; nothing is sent); others go to the sealer."""
        event = self.event(event_type, data, recipients, **kwargs)
        if spec_for(event_type).protection == "none":
            payload = validate_payload(event_type, data)
            event = event.model_copy(update={"data": payload.model_dump(mode="json", exclude_none=True)})
        return await self.publish(event)

    # -- receiving ----------------------------------------------------------------------------

    async def inbox(
        self, *, prefetch: int = 32, idle_timeout: float | None = None
    ) -> AsyncIterator[InboxMessage]:
        """Events addressed to this tenant, in arrival order, across reconnects. Stops after
        `idle_timeout` seconds without a message (None: never)."""
        if self._closed or self._ingress is None:
            raise ConnectorError("connector is not connected")
        name = self._require_inbox_name()
        loop = asyncio.get_running_loop()
        idle_since = loop.time()
        backoff = Backoff(0.2, self.reconnect_max)
        again = False
        while True:
            if again:  # the channel failed or was lost: wait longer each time nothing came
                await asyncio.sleep(backoff.next())
            again = True
            conn = await self._ensure()
            try:
                channel = await conn.channel()
                await channel.set_qos(prefetch_count=prefetch)
                status = await self._declared(channel, name)
                queue = await channel.get_queue(name, ensure=False)
            except InboxUnavailable:
                raise
            except _TRANSIENT as exc:
                log.warning("connector.inbox_open_failed", error=type(exc).__name__)
                await self._invalidate(conn)
                continue
            self.standby = status.consumers > 0
            if self.standby:
                log.warning(
                    "connector.standby",
                    tenant=self.tenant,
                    active_consumers=status.consumers,
                    detail="another instance of this tenant is consuming the inbox; this one "
                    "receives nothing until that one stops",
                )
            arrivals: asyncio.Queue[AbstractIncomingMessage | None] = asyncio.Queue()

            _lost = functools.partial(_signal_lost, arrivals)

            channel.close_callbacks.add(_lost)
            conn.close_callbacks.add(_lost)
            try:
                tag = await queue.consume(arrivals.put)
            except (ChannelAccessRefused, ChannelNotFoundEntity) as exc:
                channel.close_callbacks.discard(_lost)
                conn.close_callbacks.discard(_lost)
                raise self._unavailable(exc) from None
            except _TRANSIENT:
                await self._invalidate(conn)
                continue
            try:
                while True:
                    now = loop.time()
                    wait = None if idle_timeout is None else idle_since + idle_timeout - now
                    due = self._next_overdue(now)
                    timeout = due if wait is None else wait if due is None else min(wait, due)
                    try:
                        raw = await asyncio.wait_for(arrivals.get(), timeout)
                    except TimeoutError:
                        await self._report_overdue(loop.time())  # quiet inbox: holes are gaps now
                        if idle_timeout is not None and loop.time() >= idle_since + idle_timeout:
                            return
                        continue
                    if raw is None:
                        log.warning("connector.inbox_lost", tenant=self.tenant)
                        break  # channel or connection gone: reconnect, re-consume
                    idle_since = loop.time()
                    backoff.reset()
                    if self.standby:
                        self.standby = False
                        log.info("connector.active", tenant=self.tenant, detail="took over the inbox")
                    message = await self._receive(raw)
                    if message is not None:
                        yield message
            finally:
                with contextlib.suppress(Exception):
                    channel.close_callbacks.remove(_lost)
                with contextlib.suppress(Exception):
                    conn.close_callbacks.remove(_lost)
                if not channel.is_closed:
                    with contextlib.suppress(*_TRANSIENT):
                        await asyncio.wait_for(queue.cancel(tag), 5)
                    await _quietly(channel.close())

    def _require_inbox_name(self) -> str:
        if not self.inbox_name:
            raise InboxUnavailable(
                "no inbox name: pass inbox_name (from the tenant's provisioning, or the hub's "
                "GET /tenants/me) to read the inbox"
            )
        return self.inbox_name

    def _unavailable(self, exc: BaseException) -> InboxUnavailable:
        # The name itself stays out of the message (and so out of logs): it is what keeps
        # other tenants from probing the inbox.
        why = "does not exist" if isinstance(exc, ChannelNotFoundEntity) else "may not be read by us"
        return InboxUnavailable(
            f"the broker says the inbox named by inbox_name {why}: check the name "
            "(the hub's GET /tenants/me tells the current one)"
        )

    async def _declared(self, channel: AbstractChannel, name: str) -> InboxStatus:
        """A passive declare of our own inbox (allowed to anyone who knows the name; it is
        our way to see another active instance). The broker closes the channel on a refusal."""
        try:
            queue = await channel.declare_queue(name, passive=True)
        except (ChannelAccessRefused, ChannelNotFoundEntity) as exc:
            raise self._unavailable(exc) from None
        result = queue.declaration_result
        return InboxStatus(int(result.message_count or 0), int(result.consumer_count or 0))

    async def inbox_status(self) -> InboxStatus:
        """Messages waiting in our inbox and its active consumers (another instance, when we
        are not consuming). `InboxUnavailable` for a wrong name."""
        name = self._require_inbox_name()
        conn = await self._ensure()
        channel = await conn.channel()
        try:
            return await self._declared(channel, name)
        finally:
            await _quietly(channel.close())

    async def _receive(self, raw: AbstractIncomingMessage) -> InboxMessage | None:
        """Turn a broker message into an InboxMessage, or settle it here and return None."""
        try:
            event = parse_event(raw.body)
        except InbeeldError as exc:
            log.warning("connector.unparseable", reason=exc.reason, field=exc.field)
            self.stats.rejected += 1
            await _settle(raw.reject(requeue=False))
            return None
        self.stats.received += 1
        if self.dedupe and await self.state.seen(event.source, event.id):
            self.stats.duplicates += 1
            log.info("connector.duplicate", event_id=event.id)
            await self._send_receipt(event)
            await _settle(raw.ack())
            return None
        await self._check_sequence(event)
        started = time.time()
        parent = event.traceparent.split("-")[2] if event.traceparent else None
        span = tracing.start(
            "connector.receive",
            traceparent=event.traceparent,
            kind=tracing.SpanKind.CONSUMER,
            attributes=_span_attrs(event),
        )
        name = f"receive {event.short_type}"
        try:
            with tracing.active(span):
                payload = await self._open_payload(event, span)
        except InbeeldError as exc:
            tracing.fail(span, exc.reason)
            span.end()
            await self._log(span, name, STATUS_ERROR, started, event, None, parent)
            log.warning(
                "connector.invalid", event_id=event.id, type=event.type, reason=exc.reason, field=exc.field
            )
            self.stats.rejected += 1
            metrics.open_failures.labels(reason=exc.reason).inc()
            await _settle(raw.reject(requeue=False))
            if isinstance(exc, _UNOPENABLE):
                await self._send_delivery_failed(event, exc.reason)
            return None
        span.end()
        opened = payload.model_dump(mode="json") if payload is not None else None
        subject = data_subject_id(opened)
        await self._log(span, name, STATUS_OK, started, event, subject, parent, legal_basis_of(opened))
        # What we hand on carries our span, so the case system's spans (and ours) follow it.
        event = event.model_copy(update={"traceparent": tracing.traceparent_of(span)})
        return InboxMessage(event, raw, payload, self)

    async def _open_payload(self, event: CloudEvent, parent: tracing.Span | None = None) -> Payload | None:
        spec = spec_for(event.type)
        if spec.protection == "none":
            return validate_payload(event.type, event.data)
        if self.sealer is None:
            return None
        span = tracing.start(
            "connector.decrypt", parent=parent, attributes={"inbeeld.protection": spec.protection}
        )
        try:
            return await self.sealer.open(event)
        except InbeeldError as exc:
            tracing.fail(span, exc.reason)
            raise
        finally:
            span.end()

    async def _check_sequence(self, event: CloudEvent) -> None:
        if event.sequence is None:
            return
        now = asyncio.get_running_loop().time()
        seq = event.sequence
        last = await self.state.last_sequence()
        if self._pending.pop(seq, None) is not None:
            self.stats.reordered += 1  # a late copy filled its hole: not a gap
        elif last is not None and seq > last + 1:
            if seq - last - 1 > MAX_PENDING:  # too many to wait for one by one
                await self._report_gap(last + 1, seq)
            else:
                self._pending.update(dict.fromkeys(range(last + 1, seq), now))
        if last is None or seq > last:
            await self.state.set_last_sequence(seq)
        await self._report_overdue(now)

    def _next_overdue(self, now: float) -> float | None:
        """Seconds until the oldest missing number becomes a gap (None: nothing missing)."""
        if not self._pending:
            return None
        return max(0.0, min(self._pending.values()) + self.gap_grace - now)

    async def _report_overdue(self, now: float | None = None) -> None:
        """Report, as gaps, the missing numbers that did not arrive within `gap_grace`
        (all of them when `now` is None), one report per run of consecutive numbers."""
        overdue = sorted(
            n for n, since in self._pending.items() if now is None or now - since >= self.gap_grace
        )
        for n in overdue:
            del self._pending[n]
        start = None
        for i, n in enumerate(overdue):
            if start is None:
                start = n
            if i + 1 == len(overdue) or overdue[i + 1] != n + 1:
                await self._report_gap(start, n + 1)
                start = None

    async def _report_gap(self, expected: int, got: int) -> None:
        self.stats.gaps += 1
        metrics.sequence_gaps.inc()
        log.warning("connector.sequence_gap", tenant=self.tenant, expected=expected, got=got)
        if self.on_gap is not None:
            result = self.on_gap(expected, got)
            if inspect.isawaitable(result):
                await result
        self.request_resync(expected, got - 1)

    def request_resync(self, first: int, last: int) -> None:
        """Ask the hub, in the background, to publish inbox numbers first..last again (done by
        itself for each gap; also for one left from before a restart). Needs `resync`."""
        if self.resync is None or self._closing or last < first:
            return
        # In the background: the copies come into the inbox the caller is reading.
        task = asyncio.create_task(self._ask_resync(first, last), name="inbeeld-resync")
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    async def _ask_resync(self, first: int, last: int) -> None:
        """Ask the hub for first..last again until it has sent them, backing off while it
        cannot be reached. A range it no longer keeps (410) or a refusal is logged, once."""
        assert self.resync is not None
        backoff = Backoff(1.0, self.reconnect_max)
        while True:
            try:
                await self.resync(first, last)
            except Gone as exc:
                log.error("connector.resync_impossible", tenant=self.tenant, first=first, reason=exc.reason)
                return
            except InbeeldError as exc:
                status = getattr(exc, "status", None)
                if status is not None and status < 500 and status != 429:
                    log.error("connector.resync_refused", tenant=self.tenant, first=first, reason=exc.reason)
                    return
                log.warning("connector.resync_retry", tenant=self.tenant, first=first, reason=exc.reason)
                await asyncio.sleep(backoff.next())
                continue
            self.stats.resyncs += 1
            log.info("connector.resync_requested", tenant=self.tenant, first=first, last=last)
            return

    async def _after_processing(self, event: CloudEvent) -> None:
        if self.dedupe:
            await self.state.remember(event)
        await self._send_receipt(event)

    # -- receipts -----------------------------------------------------------------------------

    def receipt_for(self, event: CloudEvent) -> CloudEvent | None:
        """The receipt for `event`, or None when it gets none (hub events, receipts, or a
        sender known only by OIN). Its id derives from the event, so a repeat is a duplicate."""
        spec = EVENTS.get(event.type)
        if spec is None or spec.hub_only or event.type == RECEIPT_TYPE:
            return None
        kind, code = event.source_party
        if kind != "cbs":
            return None
        payload = Receipt(event_id=event.id, event_source=event.source)
        return CloudEvent(
            id=str(uuid.uuid5(_RECEIPT_NS, f"{self.tenant}|{event.source}|{event.id}")),
            source=self.source,
            type=RECEIPT_TYPE,
            dataschema=EVENTS[RECEIPT_TYPE].dataschema,
            recipients=[code],
            correlationid=event.correlationid,
            traceparent=event.traceparent,  # in the trace of what it answers
            data=payload.model_dump(mode="json"),
        )

    async def _send_receipt(self, event: CloudEvent) -> None:
        if not self.receipts:
            return
        receipt = self.receipt_for(event)
        if receipt is None:
            return
        try:
            await self._deliver(receipt)
        except ConnectorError as exc:
            log.warning("connector.receipt_failed", event_id=event.id, error=exc.message)

    # -- delivery failures ----------------------------------------------------------------------

    async def delivery_failed_for(self, event: CloudEvent, reason: str) -> CloudEvent | None:
        """The `delivery.failed` telling `event`'s sender we could not open it, or None when
        there is nobody to tell (an unsigned event type, a hub event, a sender we cannot name).
        Its id is random: a report is news, and nobody else can occupy its id beforehand."""
        spec = EVENTS.get(event.type)
        if spec is None or spec.hub_only or spec.protection == "none":
            return None
        kind, value = event.source_party
        code: str | None = value if kind == "cbs" else None
        sender_of = getattr(self.sealer, "sender_of", None)
        if code is None and sender_of is not None:
            try:
                code = await sender_of(event)
            except InbeeldError:
                code = None
        if code is None or code == self.tenant:
            return None
        payload = DeliveryFailed(
            event_id=event.id, event_source=event.source, event_type=event.type, reason=reason[:32]
        )
        return CloudEvent(
            source=self.source,
            type=DELIVERY_FAILED_TYPE,
            dataschema=EVENTS[DELIVERY_FAILED_TYPE].dataschema,
            recipients=[code],
            subject=event.subject,
            correlationid=event.correlationid,
            traceparent=event.traceparent,  # in the trace of what it answers
            data=payload.model_dump(mode="json"),
        )

    async def _send_delivery_failed(self, event: CloudEvent, reason: str) -> None:
        if not self.report_failures:
            return
        try:
            report = await self.delivery_failed_for(event, reason)
            if report is None:
                return
            await self._deliver(report)
        except (InbeeldError, ValueError) as exc:  # never let a report stop the inbox
            log.warning("connector.delivery_failed_unsent", event_id=event.id, error=type(exc).__name__)
            return
        log.warning("connector.delivery_failed_sent", event_id=event.id, type=event.type, reason=reason)


@contextlib.contextmanager
def _library_quiet() -> Iterator[None]:
    """aiormq logs a failed connect itself (raw, beside our structured lines): mute that."""
    logger = logging.getLogger("aiormq.connection")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _refusal(exc: BaseException) -> str | None:
    """Why the broker refused to open a connection (None: it did not refuse). A refused vhost
    reaches aiormq as a Connection.Close where it expected Connection.OpenOk."""
    if isinstance(exc, _REFUSED):
        return str(exc.args[0] if exc.args else "").split(" - ", 1)[0] or type(exc).__name__
    if isinstance(exc, InvalidFrameError) and "Connection.OpenOk" in str(exc) and "Close" in str(exc):
        return "NOT_ALLOWED: no access to the vhost"
    return None


def _span_attrs(event: CloudEvent) -> dict[str, str | int | bool]:
    """A span's attributes for an event: its id, type and parties' codes, never its data."""
    return {
        "inbeeld.event.id": event.id,
        "inbeeld.event.type": event.type,
        "inbeeld.recipients": len(event.recipients),
    }


def _signal_lost(arrivals: asyncio.Queue[AbstractIncomingMessage | None], *_: Any) -> None:
    arrivals.put_nowait(None)


async def _quietly(op: Awaitable[Any]) -> None:
    try:
        await asyncio.wait_for(op, 5)
    except Exception:  # noqa: S110 - closing something already broken
        pass
