"""The long-running connector (`inbeeld-connector run`): inbox -> sinks, sources -> hub.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

For each inbox message, in order:
    open + validate (SDK; sealed and signed events through the runtime's `Sealer`)
    -> its flow (below; a refusal dead-letters the message, a hub/broker outage retries)
    -> direct sinks (folder, stdout; retried in place)
    -> one local-store transaction: remember source+id, queue the body for durable sinks
    -> ack on the broker -> (optional receipt) -> wake the outbox workers.

Flows, before any sink sees the event:
    notice.*, group.key_shared -> `NoticeDesk.handle`: answers pupil_missing from the local
        register (when [notices] auto_answer), records pupil_found, honours closed; a shared
        group key is stored and never delivered to a sink. `expire()` runs every
        [notices] check_seconds, and open notices are matched again after the register
        changed (an import) or a group key arrived.
    transfer.*  -> `transfers.check_subject`: an envelope whose subject is not the payload's
        transfer id is refused; an offer is kept for the workspace's werkbak (`offers.keep`).
    template.*  -> `connectors.templates.TemplateCatalogue.handle` (the local catalogue),
        only from the publishers [templates] accepts.
    hub.rejected, hub.receipt, delivery.failed -> kept in the store (`LocalStore.hub_replies`)
        and delivered, so the municipality's system sees what became of what it sent
        (delivery.failed: a recipient could not open it; logged as an error). The local state
        follows a hub.rejected: the notice it asked becomes `refused`, the folder-source file
        that sent it moves from sent/ to failed/ with an .error.txt naming the reason.
    hub.alert -> logged (`runtime.hub_alert`) and delivered: the hub raised or cleared an
        alert about this tenant (its connector offline, a backlog, a full inbox, the webhook
        failing).
    key.rotated -> the directory forgets its cached keys of that tenant.
    hub.key_replacement_refused -> logged as an error: someone with this tenant's API token
        tried to register other keys (another installation with a copied configuration?).

Keys: on start the runtime registers its keystore's public keys, with a rotation proof
signed by a key the hub already publishes (`Directory.register`). If the hub refuses
(`key_replacement_refused`: this keystore is not the one registered for the tenant), the
runtime stops with that message rather than run with keys nobody seals to.
Log lines name events, types, reasons and fields only: never personal data.
A crash anywhere before the ack redelivers the message; after the store transaction the
redelivered copy is recognised by source+id and only acked. So a webhook gets each event
once, even across restarts and broker outages (it may see a retried POST if it answered
after our timeout: `X-Inbeeld-Event-Id` lets it drop that).

Every loop (consume, outbox workers, sources) runs supervised: an unexpected error is
logged and the loop restarts after a pause; cancelling `run()` stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

import structlog
from opentelemetry import trace
from sqlalchemy import func, select

from connectors import inbox_name, metrics, offers, transfers
from connectors.backoff import Backoff
from connectors.client import (
    BrokerAccessRefused,
    Connector,
    ConnectorError,
    EventSealer,
    InboxMessage,
    InboxUnavailable,
)
from connectors.config import (
    ConfigError,
    ConnectorConfig,
    FolderSinkConfig,
    FolderSourceConfig,
    HttpSourceConfig,
    StdoutSinkConfig,
    WebhookSinkConfig,
)
from connectors.directory import Directory
from connectors.group_keys import KEY_SHARED
from connectors.health_report import WebhookHealth
from connectors.hub_api import HubApiError
from connectors.keystore import Keystore
from connectors.metrics_port import MetricsPort
from connectors.notices import NOTICE_TYPES, NoticeDesk
from connectors.resync import ask_resync
from connectors.schema import pupils
from connectors.services import ConnectorServices, notice_desk
from connectors.sinks import FolderSink, OutboxWorker, Sink, SinkError, StdoutSink, WebhookSink, delivery_body
from connectors.sources import FolderSource, HttpSource
from connectors.store import LocalStore
from connectors.templates import TemplateCatalogue
from schemas import tracing
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError, KeyReplacementRefused
from schemas.events import (
    DeliveryFailed,
    HubAlert,
    HubKeyReplacementRefused,
    HubReceipt,
    HubRejected,
    Payload,
    TemplatePublished,
    TemplateWithdrawn,
    TransferOffered,
)
from schemas.names import KEY_ROTATED

__all__ = ["FlowRefused", "Runtime"]

log = structlog.get_logger("inbeeld.connector.runtime")

HUB_REJECTED = "nl.leerplicht.hub.rejected"
HUB_RECEIPT = "nl.leerplicht.hub.receipt"
HUB_ALERT = "nl.leerplicht.hub.alert"
KEY_REPLACEMENT_REFUSED = "nl.leerplicht.hub.key_replacement_refused"
DELIVERY_FAILED = "nl.leerplicht.delivery.failed"
TRANSFER_PREFIX = "nl.leerplicht.transfer."
TEMPLATE_PREFIX = "nl.leerplicht.template."
# The hub's API or broker is away for a while: retry the flow, never dead-letter for it.
_TRANSIENT = (ConnectorError, HubApiError, OSError, TimeoutError)


class FlowRefused(InbeeldError):
    """This connector does not accept the event (e.g. a publisher [templates] leaves out)."""

    reason = "refused"


class Runtime:
    def __init__(
        self,
        config: ConnectorConfig,
        *,
        sealer: EventSealer | None = None,
        keystore: Keystore | None = None,
        reconnect_max: float = 30.0,
    ) -> None:
        self.config = config
        self.sealer = sealer
        self.keystore = keystore
        self.reconnect_max = reconnect_max
        self.services: ConnectorServices | None = None
        self.store: LocalStore | None = None
        self.connector: Connector | None = None
        self.sinks: list[Sink] = []
        self.workers: list[OutboxWorker] = []
        self.folder_sources: list[FolderSource] = []
        self.http_sources: list[HttpSource] = []
        self.processed = 0
        self.gaps = 0
        self.resynced = 0  # gaps the hub filled again on our request
        self.refused = 0
        self.ready = asyncio.Event()
        self.desk: NoticeDesk | None = None
        self.templates: TemplateCatalogue | None = None
        self.keys_registered = False
        self._tasks: list[asyncio.Task[None]] = []
        self._directory: Directory | None = None
        self._rescan_due = False
        self._wake_notices = asyncio.Event()
        self._register_seen: tuple[int, float] | None = None
        self.metrics_port: MetricsPort | None = None
        self.health: WebhookHealth | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Start, then run until cancelled. A start that fails (e.g. the hub refuses our keys)
        closes what it had opened before the error goes up."""
        try:
            await self.start()
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        cfg = self.config
        inbox_name.check_configured(cfg)
        if self.keystore is None and cfg.keystore is None:
            for i, sc in enumerate(cfg.sinks):
                if isinstance(sc, FolderSinkConfig):
                    why = "a folder sink encrypts its files under the keystore's at-rest key: add [keystore]"
                    raise ConfigError(f"sinks.{i}: {why}", field=f"sinks.{i}")
        # The same wiring as every command's (connectors.services), kept open while we run.
        token = cfg.hub.resolved_token() if cfg.hub else None
        self.services = await ConnectorServices.open(
            cfg, keystore=self.keystore or True, store=True, hub=token is not None
        )
        self.keystore = self.services.keystore
        assert self.services.store is not None
        self.store = self.services.store
        self._directory = self.services.directory
        if self.sealer is None:
            self.sealer = await self._make_sealer()
        self.connector = self.services.open_connector(
            sealer=self.sealer,
            inbox_name=cfg.broker.inbox,  # None: the inbox loop asks the hub
            state=self.store,
            receipts=cfg.receipts,
            on_gap=self._on_gap,
            gap_grace=cfg.broker.gap_grace,
            # A gap that stays open is asked of the hub again (POST /inbox/resync).
            resync=self._resync if self.services.hub_api is not None else None,
            heartbeat=cfg.broker.heartbeat,
            reconnect_max=self.reconnect_max,
            connection_name=f"inbeeld-connector {cfg.tenant} run",
        )
        self.desk = self._make_desk()
        self.templates = self._make_catalogue()
        self.sinks = self._make_sinks()
        health = None
        if self.services.hub_api is not None:
            park_after = min(
                (s.config.park_after for s in self.sinks if isinstance(s, WebhookSink)), default=3
            )
            health = WebhookHealth(self.services.hub_api, self.store, failing_after=park_after)
        self.health = health
        for sink in self.sinks:
            if isinstance(sink, WebhookSink):
                self.workers.append(OutboxWorker(self.store, sink, tenant=cfg.tenant, health=health))
        if cfg.metrics is not None:
            self.metrics_port = MetricsPort(cfg.metrics, self.store, [w.sink.name for w in self.workers])
            await self.metrics_port.start()
        await self._connect()
        await self._resync_left_over()
        for worker in self.workers:
            self._spawn(f"outbox:{worker.sink.name}", worker.run)
        self._spawn("inbox", self._consume)
        if self.sealer is not None and self.sealer is self.services.sealer and not self.keys_registered:
            self._spawn("keys", self._register_keys_until_done)
        if self.desk is not None:
            self._spawn("notices", self._notice_clock)
        for i, src in enumerate(cfg.sources):
            if isinstance(src, FolderSourceConfig):
                folder = FolderSource(src, self.connector)
                self.folder_sources.append(folder)
                self._spawn(f"source:folder-{i}", folder.run)
            elif isinstance(src, HttpSourceConfig):
                token = os.environ.get(src.token_env) if src.token_env else None
                http = HttpSource(src, self.connector, token)
                self.http_sources.append(http)
                serving = asyncio.create_task(http.run(), name=f"source:http-{i}")
                self._tasks.append(serving)
                await _until_started(http, serving)
        self.ready.set()
        log.info(
            "runtime.started",
            tenant=cfg.tenant,
            sinks=[s.name for s in self.sinks],
            sources=len(cfg.sources),
            sealed=self.sealer is not None,
            keys_registered=self.keys_registered,
            notices=self._notices_mode(),
            templates=self.templates is not None,
        )

    @property
    def parked(self) -> int:
        """Outbox items parked since start (refused for good by a webhook; `outbox.parked`)."""
        return sum(worker.parked for worker in self.workers)

    def _notices_mode(self) -> str:
        if self.desk is None:
            return "off"
        return "answer" if self.desk.auto_answer else "record"

    async def stop(self) -> None:
        for http in self.http_sources:
            http.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for sink in self.sinks:
            await sink.close()
        if self.metrics_port is not None:
            await self.metrics_port.stop()
        if self.services is not None:
            await self.services.aclose()  # the connector, the hub's API, the store
        log.info("runtime.stopped", tenant=self.config.tenant, processed=self.processed, parked=self.parked)

    async def _connect(self) -> None:
        """Connect, trying again with capped exponential backoff and jitter. An unreachable
        broker is logged at every attempt; a refusal (wrong user, password or tenant, or a
        suspended one) once as an error, and then each attempt at debug level only."""
        assert self.connector is not None
        backoff = Backoff(0.5, self.reconnect_max)
        refused = False
        while True:
            try:
                await self.connector.connect()
                if refused:
                    log.info("runtime.broker_access_granted", tenant=self.config.tenant)
                return
            except BrokerAccessRefused as exc:
                delay = backoff.next()
                if not refused:
                    log.error(
                        "runtime.broker_access_refused",
                        tenant=self.config.tenant,
                        error=exc.message,
                        retry=f"with growing delays up to {self.reconnect_max:g} s, without logging each",
                    )
                refused = True
                log.debug("runtime.broker_retry", delay=round(delay, 2))
            except ConnectorError as exc:
                delay = backoff.next()
                log.warning("runtime.broker_unreachable", error=exc.message, delay=round(delay, 2))
            await asyncio.sleep(delay)

    def _spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        async def supervised() -> None:
            delay = 1.0
            while True:
                try:
                    await loop()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("runtime.loop_failed", loop=name, delay=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 60.0)

        self._tasks.append(asyncio.create_task(supervised(), name=name))

    # -- wiring -------------------------------------------------------------------------------

    async def _make_sealer(self) -> EventSealer | None:
        assert self.services is not None
        if self.services.sealer is None:
            log.info(
                "runtime.no_sealer", reason="configure [keystore] and [hub] to send and open sealed events"
            )
            return None
        await self._register_keys()  # retried in the background (`keys` loop) if the hub is away
        return self.services.sealer

    async def _register_keys(self) -> bool:
        """Publish our public keys in the hub's directory, so others can seal to us."""
        assert self.keystore is not None and self._directory is not None
        try:
            await self._directory.register(
                self.keystore.public_jwks(), tenant=self.config.tenant, signers=self.keystore.signing_keys()
            )
        except KeyReplacementRefused as exc:
            # Retrying cannot help: the hub keeps the keys of the keystore registered before.
            log.error("runtime.key_replacement_refused", tenant=self.config.tenant, error=exc.message)
            raise
        except InbeeldError as exc:
            log.warning("runtime.key_registration_failed", error=exc.message)
            return False
        except Exception as exc:
            log.warning("runtime.key_registration_failed", error=type(exc).__name__)
            return False
        self.keys_registered = True
        log.info("runtime.keys_registered", tenant=self.config.tenant)
        return True

    async def _register_keys_until_done(self) -> None:
        delay = 2.0
        while True:
            try:
                if await self._register_keys():
                    return
            except KeyReplacementRefused:
                return  # logged; only the operator or the right keystore can resolve it
            await asyncio.sleep(delay)
            delay = min(delay * 2, 300.0)

    def _make_desk(self) -> NoticeDesk | None:
        directory = self._directory or getattr(self.sealer, "directory", None)
        if self.sealer is None or self.store is None or self.store.keystore is None or directory is None:
            return None
        return notice_desk(
            self.config,
            self.connector,  # type: ignore[arg-type]
            self.sealer,  # type: ignore[arg-type]
            self.store,
            directory,
        )

    def _make_catalogue(self) -> TemplateCatalogue:
        assert self.store is not None
        return TemplateCatalogue(self.store, self.sealer)

    def _make_sinks(self) -> list[Sink]:
        sinks: list[Sink] = []
        for i, (name, sc) in enumerate(zip(self.config.sink_names(), self.config.sinks, strict=True)):
            if isinstance(sc, WebhookSinkConfig):
                sinks.append(WebhookSink(name, sc, sc.resolved_secret(f"sinks.{i}")))
            elif isinstance(sc, FolderSinkConfig):
                assert self.keystore is not None  # checked in start(), before anything opened
                sinks.append(FolderSink(name, sc, self.keystore))
            elif isinstance(sc, StdoutSinkConfig):
                sinks.append(StdoutSink(name, sc))
        return sinks

    async def _on_gap(self, expected: int, got: int) -> None:
        self.gaps += 1
        if self.store is not None:
            await self.store.set_state("resync_needed_from", str(expected))
        log.warning("runtime.resync_needed", expected=expected, got=got)

    async def _resync(self, first: int, last: int) -> None:
        assert self.services is not None and self.services.hub_api is not None
        await ask_resync(self.services.hub_api, first, last)
        self.resynced += 1
        if self.store is not None and await self.store.get_state("resync_needed_from") == str(first):
            await self.store.set_state("resync_needed_from", "")

    async def _resync_left_over(self) -> None:
        """A gap recorded before a restart (reported as the connector closed, or its resync not
        done yet): asked for again, up to the last number this store saw."""
        assert self.store is not None and self.connector is not None
        left = await self.store.get_state("resync_needed_from")
        last = await self.store.last_sequence()
        if left and left.isdigit() and last is not None and self.connector.resync is not None:
            log.info("runtime.resync_left_over", first=int(left), last=last)
            self.connector.request_resync(int(left), last)

    # -- the inbox ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        """Consume the inbox; its name comes from [broker] inbox or the hub (asked again when
        the broker no longer knows the name, e.g. after `inbeeld migrate` moved it)."""
        connector = self.connector
        assert connector is not None
        delay = 1.0
        while True:
            try:
                if connector.inbox_name is None:
                    connector.inbox_name = await inbox_name.resolve(self.config)
                async for message in connector.inbox(prefetch=self.config.broker.prefetch):
                    delay = 1.0
                    await self.handle(message)
                return
            except (InboxUnavailable, inbox_name.InboxNameUnknown) as exc:
                log.warning("runtime.inbox_unavailable", error=exc.message, delay=delay)
                if self.config.broker.inbox is None:
                    connector.inbox_name = None  # ask the hub again
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def handle(self, message: InboxMessage) -> None:
        """Process one event inside its `connector.process` span (a child of its receive span):
        every log line meanwhile carries the trace and span ids."""
        event = message.event
        span = tracing.start(
            "connector.process",
            traceparent=event.traceparent,
            attributes={"inbeeld.event.id": event.id, "inbeeld.event.type": event.type},
        )
        try:
            with tracing.active(span):
                await self._handle(message)
        finally:
            span.end()

    async def _handle(self, message: InboxMessage) -> None:
        assert self.store is not None
        event, payload = message.event, message.payload
        if payload is None:
            tracing.fail(trace.get_current_span(), "cannot_open")
            log.error(
                "runtime.cannot_open",
                event_id=event.id,
                type=event.type,
                reason="a signed or sealed event needs [keystore] and [hub] configured",
            )
            await message.reject(requeue=False)
            return
        try:
            deliver = await self._flow(event, payload)
        except InbeeldError as exc:
            self.refused += 1
            tracing.fail(trace.get_current_span(), exc.reason)
            log.warning(
                "runtime.refused",
                event_id=event.id,
                type=event.type,
                reason=exc.reason,
                field=exc.field,
                action="dead-lettered",
            )
            await message.reject(requeue=False)
            return
        body = delivery_body(event, payload)
        targets = [s for s in self.sinks if deliver and s.accepts(event.type)]
        for sink in targets:
            if not sink.durable:
                await self._deliver_now(sink, event.id, body)
        await self.store.accept(event, [(s.name, body) for s in targets if s.durable])
        await message.ack()
        self.processed += 1
        metrics.event_processed(event.type)
        for worker in self.workers:
            worker.wake.set()

    # -- flows --------------------------------------------------------------------------------

    async def _flow(self, event: CloudEvent, payload: Payload) -> bool:
        """Hand `event` to its flow, retrying while the hub or broker is unreachable. Returns
        whether the sinks get it; raises `InbeeldError` to refuse (dead-letter) it."""
        delay = 0.5
        while True:
            try:
                return await self._dispatch(event, payload)
            except _TRANSIENT as exc:
                if event.type in NOTICE_TYPES:
                    self._rescan_soon()  # a half-done answer is finished by the next rescan
                error = exc.message if isinstance(exc, InbeeldError) else type(exc).__name__
                log.warning(
                    "runtime.flow_retry", event_id=event.id, type=event.type, error=error, delay=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)

    async def _follow_refusal(self, refusal: HubRejected) -> None:
        """The local state follows a `hub.rejected` about what we sent: the notice it asked is
        `refused`; the folder-source file that sent it moves to `failed/` with its reason."""
        if self.desk is not None:
            notice_id = await self.desk.refused(refusal.event_id, refusal.reason)
            if notice_id is not None:
                log.warning("runtime.notice_refused", notice_id=notice_id, reason=refusal.reason)
        for folder in self.folder_sources:
            if folder.refused(refusal.event_id, refusal.reason, refusal.message, refusal.field) is not None:
                break

    async def _dispatch(self, event: CloudEvent, payload: Payload) -> bool:
        kind = event.type
        if kind in NOTICE_TYPES:
            return await self._on_notice(event, payload)
        if kind.startswith(TRANSFER_PREFIX):
            transfers.check_subject(event, payload)
            if isinstance(payload, TransferOffered) and self.store is not None and self.store.keystore:
                # Kept for the workspace's werkbak, and delivered to the sinks as before.
                await offers.keep(self.store, event.id, event.source_party[1], payload)
            return True
        if kind.startswith(TEMPLATE_PREFIX):
            await self._on_template(event, payload)
            return True
        if kind == HUB_REJECTED and isinstance(payload, HubRejected):
            assert self.store is not None
            await self.store.record_hub_reply(
                event.id,
                "rejected",
                payload.event_id,
                reason=payload.reason,
                message=payload.message,
                field=payload.field,
            )
            log.warning(
                "runtime.hub_rejected", about=payload.event_id, reason=payload.reason, field=payload.field
            )
            await self._follow_refusal(payload)
        elif kind == HUB_RECEIPT and isinstance(payload, HubReceipt):
            assert self.store is not None
            await self.store.record_hub_reply(
                event.id, "receipt", payload.event_id, recipient=payload.recipient
            )
            log.info("runtime.hub_receipt", about=payload.event_id, recipient=payload.recipient)
        elif kind == DELIVERY_FAILED and isinstance(payload, DeliveryFailed):
            assert self.store is not None
            recipient = event.source_party[1] if event.source_party[0] == "cbs" else None
            await self.store.record_hub_reply(
                event.id, "delivery_failed", payload.event_id, reason=payload.reason, recipient=recipient
            )
            log.error(
                "runtime.delivery_failed",
                about=payload.event_id,
                type=payload.event_type,
                recipient=recipient,
                reason=payload.reason,
            )
        elif kind == KEY_REPLACEMENT_REFUSED and isinstance(payload, HubKeyReplacementRefused):
            ours = {k["kid"] for k in self.keystore.public_jwks()["keys"]} if self.keystore else set()
            by_us = bool(ours & set(payload.presented_kids))
            log.error(
                "runtime.key_replacement_alert",
                tenant=payload.tenant,
                reason=payload.reason,
                presented=payload.presented_kids,
                by_this_connector=by_us,
                hint="this connector's keystore is not the registered one"
                if by_us
                else "another installation with this tenant's API token tried to register other keys",
            )
        elif kind == HUB_ALERT and isinstance(payload, HubAlert):
            log.warning(
                "runtime.hub_alert",
                alert=payload.alert_id,
                kind=payload.kind,
                state=payload.state,
                detail=payload.detail,
            )
        elif kind == KEY_ROTATED:
            directory = self._directory or getattr(self.sealer, "directory", None)
            if directory is not None:
                directory.on_key_rotated(event)
        return True

    async def _on_notice(self, event: CloudEvent, payload: Payload) -> bool:
        # A shared group key is a secret of the group's members: it never leaves the connector.
        deliver = event.type != KEY_SHARED
        if self.desk is None:
            log.warning("runtime.notices_off", event_id=event.id, type=event.type)
            return deliver
        outcome = await self.desk.handle(event, payload)
        log.info(
            "runtime.notice",
            event_id=event.id,
            type=event.type,
            outcome=outcome.kind,
            notice_id=outcome.notice_id,
            counterpart=outcome.sender,
        )
        if outcome.kind == "key_stored":
            self._rescan_soon()  # a notice sent under this key may have come first
        return deliver

    def _rescan_soon(self) -> None:
        self._rescan_due = True
        self._wake_notices.set()

    async def _on_template(self, event: CloudEvent, payload: Payload) -> None:
        assert self.store is not None
        sender_of = getattr(self.sealer, "sender_of", None)
        sender = await sender_of(event) if sender_of is not None else None
        publisher = sender or (payload.publisher if isinstance(payload, TemplatePublished) else None)
        if publisher is not None and not self.config.templates.accepts(publisher):
            raise FlowRefused(
                f"templates from {publisher} are not accepted here ([templates])", field="source"
            )
        if self.templates is not None:
            outcome = await self.templates.handle(event, payload)
            if outcome.kind == "refused":  # kept aside; the last good version stays the default
                log.warning(
                    "runtime.template_refused", event_id=event.id, template=outcome.ref, detail=outcome.detail
                )
            else:
                log.info("runtime.template", event_id=event.id, outcome=outcome.kind, template=outcome.ref)
        elif isinstance(payload, TemplatePublished):
            await self.store.save_template(
                payload.template_id, payload.version, payload.publisher, payload.model_dump(mode="json")
            )
        elif isinstance(payload, TemplateWithdrawn):
            log.warning("runtime.template_withdrawal_ignored", event_id=event.id, reason="no catalogue")

    async def _notice_clock(self) -> None:
        """Expire notices past their deadline; match open ones again after the register changed
        (e.g. `inbeeld-connector register import` while we run) or a group key arrived."""
        assert self.desk is not None and self.store is not None
        period = self.config.notices.check_seconds if self.config.notices is not None else 60.0
        while True:
            expired = await self.desk.expire()
            if expired:
                log.info("runtime.notices_expired", count=len(expired))
            seen = await self._register_fingerprint()
            if self._register_seen is not None and seen != self._register_seen:
                self._rescan_due = True
            self._register_seen = seen
            if self._rescan_due:
                self._rescan_due = False
                try:
                    outcomes = await self.desk.rescan()
                except _TRANSIENT:
                    self._rescan_due = True
                    raise
                for outcome in outcomes:
                    log.info("runtime.notice_rescan", notice_id=outcome.notice_id, outcome=outcome.kind)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake_notices.wait(), min(period, 5.0) if self._rescan_due else period
                )
            self._wake_notices.clear()

    async def _register_fingerprint(self) -> tuple[int, float]:
        assert self.store is not None
        async with self.store.engine.connect() as conn:
            n, newest = (
                await conn.execute(select(func.count(), func.max(pupils.c.updated_at)).select_from(pupils))
            ).one()
        return int(n or 0), float(newest or 0.0)

    async def _deliver_now(self, sink: Sink, event_id: str, body: bytes) -> None:
        delay = 0.5
        while True:
            try:
                await sink.deliver(event_id, body)
                return
            except SinkError as exc:
                log.warning("sink.retry", sink=sink.name, event_id=event_id, error=exc.message, delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)


async def _until_started(http: HttpSource, serving: asyncio.Task[None]) -> None:
    while not http.server.started:
        done, _ = await asyncio.wait({serving}, timeout=0.02)
        if done:
            raise ConnectorError(f"the http source cannot listen on {http.config.host}:{http.config.port}")
