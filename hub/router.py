"""The hub router (DESIGN section 5): the AMQP edge that turns ingress messages into
deliveries. The decision to ack, retry or dead-letter is made here and nowhere else.

    consume inbeeld.router, in batches of what has arrived
      -> sender from the broker-validated user_id (no tenant: counted, dropped)
      -> parse envelope -> source check, no BSN in the envelope, rate limit (refused ones are
         not recorded) -> ledger (dedupe by sender+source+id) -> authorise -> sequence
         -> status routed + audit + the copies retained (hub.retention), all in one
            transaction per batch
      -> publish to each inbox (pipelined) -> next batch, while this one's confirms come in
      -> every confirm in -> ack (a refused copy: recipient_busy to the sender)
    a copy nacked by an inbox that is not full (`CopyNotTaken`: on a cluster, its quorum
    queue is electing a new leader) -> published again, backing off (on a new channel after
    a few tries), for up to COPY_PATIENCE seconds; then the batch goes back to the queue as
    for a broker failure
    refusal            -> hub.rejected to the sender, ack
    unparseable/orphan -> inbeeld.dlx with the reason in its headers, ack
    store unreachable  -> keep the message, back off, try again (never dead-letter for that)
    a bug              -> nack+requeue; the queue's delivery limit dead-letters it

"Unreachable" is `hub.errors.Transient` and nothing else: the store and broker adapters
(`hub.store.db`, `hub.broker.connection.broker_away`) translate their libraries' errors into
it. Any other exception, a `RuntimeError` included, is a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from wsgiref.simple_server import WSGIServer

import aio_pika
import aiormq.abc
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import DeliveryError, PublishError
from aiormq.abc import DeliveredMessage, FieldValue

from hub import audit, dead_letters, ledger, metrics, publisher, retention
from hub.broker.connection import BROKER_AWAY, broker_away, connect, connection_name
from hub.broker.delivery import RouterMessage, channel_gone, settle
from hub.broker.topology import DEAD, DELIVERY, DLX, ROUTER_QUEUE, declare_core
from hub.config import Settings
from hub.dead_letters import HEADER_DETAIL, HEADER_REASON, HEADER_SENDER
from hub.decisions import ACTOR, Admitted, Decider, Decision, audit_entry, count_outcomes
from hub.directory import CachedDirectory
from hub.errors import Transient
from hub.keys import KeyCache
from hub.rate_limit import RateLimiter
from hub.replay import HEADER_REPLAY
from hub.routing import uses_groups
from hub.store.db import Database
from hub.store.models import DeadLetter
from hub.tenants import TenantInfo
from hub.workflows import Workflow, default_workflows
from schemas import tracing
from schemas.envelope import CloudEvent, parse_event
from schemas.errors import InbeeldError, PersonalDataInEnvelope
from schemas.redaction import bsn_in_attributes
from schemas.tracing import Span, SpanKind

log = structlog.get_logger("inbeeld.router")


@dataclass
class _Copies:
    """A decided batch's copies on their way: (decision, recipient, publish task) each, and
    the batch's `router.publish` span, which ends when the last copy is confirmed."""

    tasks: list[tuple[Decision, str, asyncio.Task[None]]] = field(default_factory=list)
    span: Span | None = None


class RecipientBusy(InbeeldError):
    reason = "recipient_busy"


class CopyNotTaken(Transient):
    """The broker nacked a copy although its inbox is not at its length limit: on a cluster,
    the inbox's quorum queue lost its leader with a node and is electing another. The broker
    nacks both cases alike; only a full inbox makes the recipient busy."""


# How long a copy is published again while its inbox cannot take it (a leader election takes
# seconds; a quorum lost for longer hands the batch back to the queue, as a broker failure).
COPY_PATIENCE = 60.0
FULL_MEMORY = 1.0  # seconds an inbox found full is taken as full without looking again
RENEW_EVERY = 10.0  # seconds between two renewals of the router's channel (`_renew_channel`)


def _decide_span(sender: TenantInfo, event: CloudEvent) -> Span:
    """The router's span for one event: a child of the sender's publish (the envelope's
    traceparent). Metadata only: ids, type, tenant codes."""
    return tracing.start(
        "router.decide",
        traceparent=event.traceparent,
        kind=SpanKind.CONSUMER,
        attributes={
            "inbeeld.event.id": event.id,
            "inbeeld.event.type": event.type,
            "inbeeld.sender": sender.code,
        },
    )


def _carry_decide_spans(routable: list[Admitted], spans: list[Span], decisions: list[Decision]) -> None:
    """Every copy carries its decision: the recipients' spans become its children."""
    by_event = {id(d.original): d for d in decisions}
    for (_, event, _, _), span in zip(routable, spans, strict=True):
        d = by_event.get(id(event))
        if d is not None:
            d.decide_span = span
            d.outgoing = d.outgoing.model_copy(update={"traceparent": tracing.traceparent_of(span)})


def _end_decide_spans(routable: list[Admitted], spans: list[Span], decisions: list[Decision]) -> None:
    by_event = {id(d.original): d for d in decisions}
    for (_, event, _, _), span in zip(routable, spans, strict=True):
        d = by_event.get(id(event))
        if d is None:
            span.set_attribute("inbeeld.outcome", "duplicate")
        elif d.rejection is not None:
            tracing.fail(span, d.reason)
            span.set_attribute("inbeeld.outcome", "rejected")
        else:
            span.set_attribute("inbeeld.outcome", "repeated" if d.repeat else "routed")
            span.set_attribute("inbeeld.recipients", len(d.seqs))
        span.end()


def _copies_of(decisions: list[Decision]) -> list[tuple[Decision, retention.Copy]]:
    """Each copy of the batch as it will be published (the body made once, here), in batch
    order: the order the inboxes' sequences were handed out in."""
    copies = []
    for d in decisions:
        keepable = retention.may_keep(d.outgoing) if d.seqs else True
        for code, seq in d.seqs.items():
            body = d.outgoing.with_sequence(seq).to_bytes()
            copies.append((d, retention.Copy(code, seq, d.outgoing.id, d.outgoing.type, body, keepable)))
    return copies


def _id_guess(body: bytes) -> str:
    """The event id if the body is JSON with a sensible one, for the rejection. (Called only
    when `parse_event` refused the body for something other than its depth; RecursionError
    is caught all the same: nothing a sender writes may become a router bug.)"""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return ""
    value = raw.get("id") if isinstance(raw, dict) else None
    if not isinstance(value, str) or not 0 < len(value) <= 64 or bsn_in_attributes({"id": value}):
        return ""
    return value


class Router:
    _started = 0  # routers made in this process, for their connection names

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        workflows: list[Workflow] | None = None,
        prefetch: int = 512,
        batch_max: int = 256,
    ) -> None:
        self.settings = settings
        # Consulted in order (the first whose prefix matches an event's type) and swept.
        self.workflows = default_workflows(settings) if workflows is None else workflows
        self.db = db
        self.prefetch = prefetch
        self.batch_max = batch_max
        self._incoming: asyncio.Queue[RouterMessage] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._directory = CachedDirectory(db)
        self.hub_source = settings.hub_source
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        # The AMQP channel under the robust one: the router consumes and publishes on it
        # directly (fetched again after a reconnect).
        self._amqp: aiormq.abc.AbstractChannel | None = None
        self._dlx: AbstractExchange | None = None
        self._consumer_tag: str | None = None
        self._stopped = asyncio.Event()
        # One batch at a time keeps each inbox's sequence in publish order and a redelivered
        # copy behind its original. Scale out with more router processes (competing
        # consumers on the quorum queue), not with concurrency inside one.
        self._serial = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._confirming: set[asyncio.Task[None]] = set()
        self._full_until: dict[str, float] = {}  # tenant code -> until when its inbox counts as full
        self._renewed_at = 0.0  # when `_renew_channel` last closed the channel
        self._metrics_server: WSGIServer | None = None
        self.metrics_port: int | None = None  # where this router serves its metrics, once started
        self.handled = 0
        Router._started += 1
        self.number = Router._started  # in this process: `inbeeld-router 1` in the broker's UI
        # What each event becomes is decided there (hub.decisions); the keys of the senders and
        # recipients (hub.keys) and the per-tenant rate limit live with it.
        self.decider = Decider(
            settings,
            self._directory,
            KeyCache(),
            self.workflows,
            RateLimiter(settings.rate_limit, settings.rate_burst),
        )

    @property
    def keys(self) -> KeyCache:
        return self.decider.keys

    @property
    def limiter(self) -> RateLimiter:
        return self.decider.limiter

    @limiter.setter
    def limiter(self, value: RateLimiter) -> None:
        self.decider.limiter = value

    async def start(self) -> None:
        if self.settings.router_metrics_port is not None:  # first: a taken port stops us early
            self._metrics_server, _ = metrics.serve_router_metrics(
                self.settings.router_metrics_port, self.settings.router_metrics_host
            )
            self.metrics_port = self._metrics_server.server_port
        url = self.settings.amqp_url_for()
        self._connection = await connect(
            url,
            self.settings.redacted(url),
            name=connection_name(f"inbeeld-router {self.number}"),
            ssl_context=self.settings.amqp_ssl_context(),
        )
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await self._channel.set_qos(prefetch_count=self.prefetch)
        await declare_core(self._channel, self.settings.delivery_limit)
        self._dlx = await self._channel.get_exchange(DLX)
        self._worker = asyncio.create_task(self._work(), name="inbeeld-router")
        await self._consume()
        self._channel.reopen_callbacks.add(self._consume_again)  # after a reconnect
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="inbeeld-sweeper")
        log.info("router.started", vhost=self.settings.vhost, metrics_port=self.metrics_port)

    async def stop(self, drain: float = 10.0) -> None:
        """Stop consuming, finish the batch in hand and wait for its confirms (up to `drain`
        seconds), then close: what was not yet routed goes back to the queue untouched, so a
        restart repeats nothing."""
        self._stopped.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._amqp is not None and self._consumer_tag is not None:
            try:
                await self._amqp.basic_cancel(self._consumer_tag)
            except Exception:
                log.debug("router.cancel_failed")
        try:
            async with asyncio.timeout(drain):
                async with self._serial:  # the batch being routed, if any
                    if self._worker is not None:
                        self._worker.cancel()
                if self._confirming:
                    await asyncio.gather(*self._confirming, return_exceptions=True)
        except TimeoutError:
            log.warning("router.drain_timeout", in_flight=len(self._confirming))
        if self._worker is not None:
            self._worker.cancel()
        for task in self._confirming:
            task.cancel()
        if self._connection is not None:
            await self._connection.close()
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.shutdown)
            self._metrics_server.server_close()
            self._metrics_server = None
        log.info("router.stopped", handled=self.handled)

    async def run_forever(self) -> None:
        await self.start()
        try:
            await self._stopped.wait()
        finally:
            await self.stop()

    # -- the one place where ack / retry / dead-letter is decided ---------------------------

    async def _consume(self) -> None:
        """Consume the router queue and the dead-letter queue on the channel under the robust
        one (aiormq); called again whenever that channel is re-opened."""
        assert self._channel is not None
        self._amqp = await self._channel.get_underlay_channel()
        ok = await self._amqp.basic_consume(ROUTER_QUEUE, self._on_message)
        self._consumer_tag = ok.consumer_tag
        await self._amqp.basic_consume(DEAD, self._on_dead_delivery)

    async def _consume_again(self, *_: object) -> None:
        """The robust channel was re-opened (broker restart, network): consume again there;
        what was in flight on the old channel is redelivered by the broker."""
        if not self._stopped.is_set():
            await self._consume()
            log.info("router.consuming_again")

    async def _on_message(self, message: DeliveredMessage) -> None:
        self._incoming.put_nowait(RouterMessage(message))

    async def _work(self) -> None:
        """Take what has arrived (up to `batch_max`) and route it as one batch: one transaction
        per batch instead of one per message, which is what the store's round trips cost."""
        while True:
            batch = [await self._incoming.get()]
            while len(batch) < self.batch_max and not self._incoming.empty():
                batch.append(self._incoming.get_nowait())
            try:
                async with self._serial:
                    await self._process(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must outlive anything one batch does
                log.exception("router.batch_failed", size=len(batch))

    async def _process(self, batch: list[RouterMessage]) -> None:
        delay = 0.5
        while True:
            try:
                started = time.perf_counter()
                copies = await self.handle(batch)
                metrics.batch_duration.observe(time.perf_counter() - started)
                metrics.batch_messages.observe(len(batch))
            except Transient as exc:
                # The store or the broker is briefly away: keep the messages, try again. Those
                # that came on a channel the broker has closed meanwhile are not ours any more:
                # the broker redelivers them on the restored channel (the ledger makes the
                # second routing a no-op or a faithful repeat).
                if self._stopped.is_set():
                    return
                log.warning("router.retry", error=exc.message, delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                batch = [m for m in batch if not channel_gone(m)]
                if not batch:
                    return
                continue
            except Exception:
                if len(batch) > 1:  # find the culprit alone; the others must not pay for it
                    for message in batch:
                        await self._process([message])
                    return
                log.exception("router.bug", message_id=batch[0].message_id)
                await settle(batch[0], ack=False)
                return
            # The next batch is decided while this one's confirms come in; the messages are
            # acked only when every copy is confirmed.
            task = asyncio.create_task(self._confirm_guarded(batch, copies), name="inbeeld-confirm")
            self._confirming.add(task)
            task.add_done_callback(self._confirming.discard)
            return

    async def _confirm_guarded(self, batch: list[RouterMessage], copies: _Copies) -> None:
        try:
            await self._confirm(batch, copies)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not leave the batch unacked for ever
            log.exception("router.confirm_bug", size=len(batch))
            for message in batch:
                await settle(message, ack=False)

    async def _confirm(self, batch: list[RouterMessage], copies: _Copies) -> None:
        started = time.perf_counter()
        results = await asyncio.gather(*(task for _, _, task in copies.tasks), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        decisions = list({id(d): d for d, _, _ in copies.tasks}.values())
        if copies.span is not None:
            copies.span.set_attribute("inbeeld.refused", sum(len(d.busy) for d in decisions))
            if failed:
                tracing.fail(copies.span, type(failed[0]).__name__)
            copies.span.end()
        # One span per batch, like its publish: linked to each decision it settles.
        span = tracing.start(
            "router.confirm",
            attributes={"inbeeld.messages": len(batch)},
            links=tracing.link_to(d.decide_span for d in decisions),
        )
        try:
            await self._settle_confirmed(batch, copies, failed, started, span)
        finally:
            span.end()

    async def _settle_confirmed(
        self,
        batch: list[RouterMessage],
        copies: _Copies,
        failed: list[BaseException],
        started: float,
        span: Span,
    ) -> None:
        if failed:
            tracing.fail(span, "confirm_failed")
            # The channel failed under the copies: not acked, so the broker gives the messages
            # to a router again, which publishes the stored copies once more (same sequences).
            log.warning("router.confirm_failed", error=type(failed[0]).__name__, size=len(batch))
            for message in batch:
                if not channel_gone(message):
                    await settle(message, ack=False)
            return
        if copies.tasks:
            metrics.confirm_duration.observe(time.perf_counter() - started)
        busy = list({id(d): d for d, _, _ in copies.tasks if d.busy and d.rejection is None}.values())
        if busy:
            try:
                await self._refused(busy)
            except Transient as exc:  # told next time: the redelivered event is repeated
                log.warning("router.busy_unrecorded", error=exc.message)
                for message in batch:
                    await settle(message, ack=False)
                return
        for message in batch:
            await settle(message, ack=True)
        self.handled += len(batch)
        now = time.time()
        for d in {id(d): d for d, _, _ in copies.tasks if d.rejection is None and not d.busy}.values():
            metrics.observe_routed(d.original.time, now)

    async def _refused(self, decisions: list[Decision]) -> None:
        """Some inboxes refused their copy (full): record it and tell each sender. The store
        or broker briefly away raises `Transient`."""
        async with self.db.session() as s, s.begin():
            await ledger.set_status(s, [d.ledger_id for d in decisions], ledger.ROUTED, "recipient_busy")
            await audit.append_many(
                s, [audit_entry(d, "deliver", "refused:recipient_busy", d.busy) for d in decisions]
            )
        for d in decisions:
            busy = RecipientBusy(
                f"the inbox of {', '.join(d.busy)} is full; send again later", field="recipients"
            )
            await self._send_rejection(d.sender, d.original.id, busy)
            metrics.count_event(d.original.type, metrics.REFUSED, busy.reason)

    def _is_replay(self, message: RouterMessage) -> bool:
        """An operator's replay: only the hub's own broker user can set this user_id."""
        return HEADER_REPLAY in (message.headers or {}) and message.user_id == self.settings.amqp_user

    async def _sender_of(self, message: RouterMessage) -> TenantInfo | None:
        """The tenant behind the broker-validated user_id (from the directory, <= 1 s old); for
        a replay, the tenant its dead letter is filed under (itself only ever a validated one)."""
        user = message.user_id
        if self._is_replay(message):
            try:
                dl_id = int(str((message.headers or {})[HEADER_REPLAY]))
            except ValueError:
                return None
            async with self.db.session() as s:
                dead = await s.get(DeadLetter, dl_id)
                return await self._directory.tenant(dead.sender) if dead and dead.sender else None
        if not user:
            return None
        return await self._directory.by_broker_user(user)

    async def handle(self, batch: list[RouterMessage]) -> _Copies:
        """Decide a batch in one transaction (ledger, checks, sequences, status, audit), then
        start publishing every copy; returns the copies, whose confirms the caller awaits
        before acking. Idempotent: a redelivered batch publishes the same copies again. The
        store or the broker briefly away raises `Transient` (from their adapters)."""
        routable: list[tuple[TenantInfo, CloudEvent, int, bool]] = []
        seen: set[tuple[str, str, str]] = set()
        received: list[str] = []  # the types parsed, counted once the batch is through
        for message in batch:
            body = message.body
            sender = await self._sender_of(message)
            if sender is None:
                # No tenant to tell and nothing to replay as: counted, logged, dropped (a body
                # kept for free would let anyone fill the store).
                metrics.count_unknown_sender(message.user_id)
                log.warning("router.unknown_sender", user_id=message.user_id, size=len(body))
                continue
            try:
                event = parse_event(body)
            except InbeeldError as exc:
                event_id = "" if exc.reason == "too_deep" else _id_guess(body)
                if not event_id:
                    await self._dead_letter(message, exc.reason, exc.message, sender.code)
                    metrics.count_event(metrics.UNPARSED, metrics.DEAD_LETTERED, exc.reason)
                else:
                    await self._reject_unrecorded(sender, event_id, exc)
                    metrics.count_event(metrics.UNPARSED, metrics.REJECTED, exc.reason)
                continue
            received.append(event.type)
            key = (sender.code, event.source, event.id)
            if key in seen:  # a duplicate inside this batch
                metrics.count_event(event.type, metrics.DUPLICATE)
                continue
            seen.add(key)
            try:
                self.decider.admit(sender, event, self._is_replay(message))
            except InbeeldError as exc:
                bad_id = isinstance(exc, PersonalDataInEnvelope) and exc.field == "id"
                await self._reject_unrecorded(sender, "" if bad_id else event.id, exc)
                metrics.count_event(event.type, metrics.REJECTED, exc.reason)
                continue
            routable.append((sender, event, len(body), bool(message.redelivered)))
        if not routable:
            metrics.count_received(received)
            return _Copies()
        if any(uses_groups(e) for _, e, _, _ in routable):
            await self._directory.reload_groups()  # membership changes apply at once
        spans = [_decide_span(sender, event) for sender, event, _, _ in routable]
        try:
            async with self.db.session() as s, s.begin():
                decisions = await self.decider.decide_batch(
                    s, routable, [tracing.ids_of(span) for span in spans]
                )
                _carry_decide_spans(routable, spans, decisions)
                # Retained with the delivery records (one statement for the batch), exactly
                # as published, for a tenant's resync after an outage (hub.retention).
                outgoing = _copies_of(decisions)
                await retention.keep(s, [c for _, c in outgoing])
        except BaseException as exc:
            for span in spans:
                tracing.fail(span, getattr(exc, "reason", "") or type(exc).__name__)
                span.end()
            raise
        _end_decide_spans(routable, spans, decisions)
        # Counted once committed (a batch retried after `Transient` is not counted twice).
        metrics.count_received(received)
        count_outcomes(routable, decisions)
        routed = [d for d in decisions if d.rejection is None and not d.repeat]
        # Publish outside the transaction. All copies of the batch go out pipelined on the
        # one confirm channel, created in batch order (frames leave in this order, so each
        # inbox sees increasing sequences); the confirms are awaited together, later.
        tasks = [(d, c.recipient, asyncio.create_task(self._publish_copy(d, c))) for d, c in outgoing]
        copies = _Copies(tasks)
        if tasks:  # one span for the batch's copies, linked to the decisions they carry
            copies.span = tracing.start(
                "router.publish",
                kind=SpanKind.PRODUCER,
                attributes={"inbeeld.copies": len(tasks), "inbeeld.events": len(decisions)},
                links=tracing.link_to(d.decide_span for d in decisions),
            )
        for d in decisions:
            if d.rejection is not None:
                continue  # logged as router.rejected in _decide
            log.info(
                "router.routed",
                event_id=d.original.id,
                type=d.original.type,
                sender=d.sender.code,
                recipients=list(d.seqs),
                repeat=d.repeat,
                trace_id=d.span[0] if d.span else None,
                span_id=d.span[1] if d.span else None,
            )
        log.debug("router.batch", messages=len(batch), routed=len(routed), copies=len(tasks))
        return copies

    async def _publish_copy(self, d: Decision, c: retention.Copy) -> None:
        code = c.recipient
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + COPY_PATIENCE, 0.25
        while True:
            try:
                await self._publish_bytes(c.body, c.event_id, c.event_type, code)
                return
            except RecipientBusy:
                if d.rejection is not None:  # the sender's own inbox is full; the ledger keeps it
                    log.warning("router.rejection_undeliverable", event_id=d.original.id, sender=code)
                    return
                d.busy.append(code)
                return
            except CopyNotTaken as exc:
                if loop.time() + delay > deadline or self._stopped.is_set():
                    raise  # the batch goes back to the queue (`_settle_confirmed`)
                log.warning("router.copy_not_taken", recipient=code, error=exc.message, delay=delay)
                await asyncio.sleep(delay)
                if delay >= 1.0:
                    await self._renew_channel()
                delay = min(delay * 2, 5.0)

    async def _renew_channel(self) -> None:
        """After the node of a quorum queue's leader was killed, RabbitMQ 3.10 may go on nacking
        what a channel publishes to that queue long after a new leader took over; a new channel
        reaches the new leader. Closing the channel under the robust one makes aio-pika open
        another (and `_consume_again` consume there); what was unacked on the old one is
        redelivered, as after any channel failure. At most once per RENEW_EVERY seconds."""
        now = time.monotonic()
        if now < self._renewed_at + RENEW_EVERY or self._amqp is None or self._amqp.is_closed:
            return
        self._renewed_at = now
        log.warning("router.channel_renewed")
        with contextlib.suppress(*BROKER_AWAY, TimeoutError):
            await self._amqp.close()

    async def sweep(self, now: datetime | None = None) -> int:
        """Publish what time has made due in the workflows (reminders, expiries)."""
        due: list[tuple[CloudEvent, dict[str, int]]] = []
        async with self._serial:
            # Recorded (with sequences) in the same transaction as the state change, so a
            # crash before publishing leaves a sequence gap the recipient detects, never a
            # silently different history.
            async with self.db.session() as s, s.begin():
                for workflow in self.workflows:
                    for event in await workflow.sweep(s, now or datetime.now(UTC)):
                        due.append((event, await publisher.record(s, event)))
            for event, seqs in due:
                for code, seq in seqs.items():
                    await self._publish(event.with_sequence(seq), code)
            await publisher.published(self.db, [event.id for event, _ in due])
            await self._publish_left_over(now or datetime.now(UTC))
        await self._forget_old_copies(now or datetime.now(UTC))
        return len(due)

    async def _forget_old_copies(self, now: datetime) -> None:
        """Delete the retained copies older than `INBEELD_RETENTION_DAYS` (hub.retention)."""
        async with self.db.session() as s, s.begin():
            dropped = await retention.sweep(s, retention.cutoff(self.settings, now))
        if dropped:
            log.info("router.copies_expired", copies=dropped)

    async def _publish_left_over(self, now: datetime) -> None:
        """Publish hub events whose announcement a broker failure stopped after their change
        committed (the outbox, `hub.publisher`); younger ones are still their writer's to send."""
        async with self.db.session() as s:
            left = await publisher.pending(s, now - timedelta(seconds=self.settings.outbox_grace))
        if not left:
            return
        for copy in left:
            try:
                await self._publish_bytes(copy.body, copy.event_id, copy.event_type, copy.recipient)
            except RecipientBusy:  # a full inbox: the ledger keeps the copy, as for any other
                log.warning("router.outbox_refused", event_id=copy.event_id, recipient=copy.recipient)
        async with self.db.session() as s, s.begin():
            await publisher.forget(s, [copy.id for copy in left])
        log.info("router.outbox_published", copies=len(left))

    async def _sweep_forever(self) -> None:
        while not self._stopped.is_set():
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("router.sweep_failed")

    async def _on_dead_delivery(self, message: DeliveredMessage) -> None:
        """Keep what reached inbeeld.dead in the store (hub.dead_letters decides how)."""
        incoming = aio_pika.IncomingMessage(message, no_ack=False)
        await dead_letters.archive(incoming, self.db, self.settings.amqp_user)

    # -- hub-originated events ----------------------------------------------------------------

    async def _send_rejection(self, sender: TenantInfo, event_id: str, exc: InbeeldError) -> None:
        rejection = self.decider.rejection(sender, event_id, exc)
        async with self.db.session() as s, s.begin():
            seqs = await publisher.record(s, rejection, reason=exc.reason, detail=exc.message, outbox=False)
        await self._publish(rejection.with_sequence(seqs[sender.code]), sender.code)

    async def _reject_unrecorded(self, sender: TenantInfo, event_id: str, exc: InbeeldError) -> None:
        log.info("router.rejected", event_id=event_id, sender=sender.code, reason=exc.reason)
        async with self.db.session() as s, s.begin():
            await audit.append(
                s,
                activity="route",
                actor=ACTOR,
                outcome=f"rejected:{exc.reason}",
                sender=sender.code,
                subject_ref=event_id,
            )
        await self._send_rejection(sender, event_id, exc)

    # -- transport --------------------------------------------------------------------------

    async def _publish(self, event: CloudEvent, recipient: str) -> None:
        await self._publish_bytes(event.to_bytes(), event.id, event.type, recipient)

    async def _publish_bytes(self, body: bytes, event_id: str, event_type: str, recipient: str) -> None:
        assert self._channel is not None
        async with broker_away():
            # The same frames as Exchange.publish, without building an aio_pika.Message per copy.
            if self._amqp is None or self._amqp.is_closed:
                self._amqp = await self._channel.get_underlay_channel()
            try:
                await self._amqp.basic_publish(
                    body,
                    exchange=DELIVERY,
                    routing_key=recipient,
                    properties=publisher.copy_properties(event_id, event_type),
                    mandatory=True,
                    timeout=self.settings.publish_timeout,
                )
            except PublishError:
                raise RecipientBusy(f"{recipient} has no inbox on this hub yet") from None
            except DeliveryError:
                # Basic.Nack: the inbox is at its length limit (x-overflow reject-publish) - or,
                # on a cluster, its quorum queue could not take the copy while it elects a new
                # leader after a node went away. Only the first makes the recipient busy.
                pass
            else:
                return
        if await self._inbox_full(recipient):
            raise RecipientBusy(f"the inbox of {recipient} refused the message")
        raise CopyNotTaken(f"the inbox of {recipient} did not take the copy and is not full")

    async def _inbox_full(self, recipient: str) -> bool:
        """Whether `recipient`'s inbox holds its limit of messages (a passive declare on a
        channel of its own: an error there must not close the router's channel). True when
        it cannot be told which inbox it is; False when the broker does not answer. A full
        inbox is remembered for FULL_MEMORY seconds: a sender flooding it costs the broker
        one look a second, not one per refused copy."""
        now = time.monotonic()
        if self._full_until.get(recipient, 0.0) > now:
            return True
        full = await self._look_full(recipient)
        if full:
            self._full_until[recipient] = now + FULL_MEMORY
        return full

    async def _look_full(self, recipient: str) -> bool:
        tenant = await self._directory.tenant(recipient)
        if tenant is None or tenant.inbox is None or self._connection is None:
            return True
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                channel = await self._connection.channel(publisher_confirms=False)
                try:
                    queue = await channel.declare_queue(tenant.inbox, passive=True)
                finally:
                    await channel.close()
        except (*BROKER_AWAY, TimeoutError):
            return False
        ready = queue.declaration_result.message_count or 0
        return ready >= self.settings.inbox_max_length

    async def _dead_letter(
        self, message: RouterMessage, reason: str, detail: str, sender: str | None
    ) -> None:
        assert self._dlx is not None
        headers: dict[str, FieldValue] = {
            HEADER_REASON: reason,
            HEADER_DETAIL: detail[:500],
            HEADER_SENDER: sender or "",
        }
        async with broker_away():
            await self._dlx.publish(
                aio_pika.Message(
                    message.body,
                    headers=headers,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    content_type=message.content_type,
                    user_id=self.settings.amqp_user,  # what dead_letters.archive believes the headers of
                ),
                routing_key="",
                timeout=self.settings.publish_timeout,
            )
        log.warning("router.dead_letter", reason=reason, sender=sender)
