"""The long-running connector (`inbeeld-connector run`): inbox -> sinks, sources -> hub.

For each inbox message, in order:
    open + validate (SDK) -> direct sinks (folder, stdout; retried in place)
    -> one local-store transaction: remember source+id, queue the body for durable sinks
    -> ack on the broker -> (optional receipt) -> wake the outbox workers.
A crash anywhere before the ack redelivers the message; after the store transaction the
redelivered copy is recognised by source+id and only acked. So a webhook gets each event
once, even across restarts and broker outages (it may see a retried POST if it answered
after our timeout: `X-Inbeeld-Event-Id` lets it drop that).

Every loop (consume, outbox workers, sources) runs supervised: an unexpected error is
logged and the loop restarts after a pause; cancelling `run()` stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from connectors.client import Connector, ConnectorError, InboxMessage, Sealer
from connectors.config import (
    ConnectorConfig,
    FolderSinkConfig,
    FolderSourceConfig,
    HttpSourceConfig,
    StdoutSinkConfig,
    WebhookSinkConfig,
)
from connectors.keystore import KEK_ENV, PASSPHRASE_ENV, Keystore
from connectors.sinks import FolderSink, OutboxWorker, Sink, SinkError, StdoutSink, WebhookSink, delivery_body
from connectors.sources import FolderSource, HttpSource
from connectors.store import LocalStore
from schemas.events import TemplatePublished

__all__ = ["Runtime", "open_keystore"]

log = structlog.get_logger("inbeeld.connector.runtime")


def open_keystore(config: ConnectorConfig) -> Keystore | None:
    """The tenant's keystore, unlocked by the env variables the config names (or None)."""
    ks = config.keystore
    if ks is None:
        return None
    environ = {
        KEK_ENV: os.environ.get(ks.kek_env, ""),
        PASSPHRASE_ENV: os.environ.get(ks.passphrase_env, ""),
    }
    return Keystore.from_env(ks.path, environ=environ, create=ks.create)


class Runtime:
    def __init__(
        self,
        config: ConnectorConfig,
        *,
        sealer: Sealer | None = None,
        keystore: Keystore | None = None,
        reconnect_max: float = 30.0,
    ) -> None:
        self.config = config
        self.sealer = sealer
        self.keystore = keystore
        self.reconnect_max = reconnect_max
        self.store: LocalStore | None = None
        self.connector: Connector | None = None
        self.sinks: list[Sink] = []
        self.workers: list[OutboxWorker] = []
        self.folder_sources: list[FolderSource] = []
        self.http_sources: list[HttpSource] = []
        self.processed = 0
        self.gaps = 0
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._directory: Any = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Start, then run until cancelled."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        cfg = self.config
        if self.keystore is None:
            self.keystore = open_keystore(cfg)
        self.store = await LocalStore.open(cfg.store.path, self.keystore)
        if self.sealer is None:
            self.sealer = await self._make_sealer()
        self.connector = Connector(
            cfg.tenant,
            cfg.broker.amqp_url(),
            system=cfg.system,
            oin=cfg.oin,
            publish_timeout=cfg.broker.publish_timeout,
            sealer=self.sealer,
            state=self.store,
            receipts=cfg.receipts,
            on_gap=self._on_gap,
            heartbeat=cfg.broker.heartbeat,
            reconnect_max=self.reconnect_max,
        )
        self.sinks = self._make_sinks()
        for sink in self.sinks:
            if isinstance(sink, WebhookSink):
                self.workers.append(OutboxWorker(self.store, sink))
        await self._connect()
        for worker in self.workers:
            self._spawn(f"outbox:{worker.sink.name}", worker.run)
        self._spawn("inbox", self._consume)
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
            "runtime.started", tenant=cfg.tenant, sinks=[s.name for s in self.sinks], sources=len(cfg.sources)
        )

    async def stop(self) -> None:
        for http in self.http_sources:
            http.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.connector is not None:
            await self.connector.close()
        for sink in self.sinks:
            await sink.close()
        if self._directory is not None:
            await self._directory.aclose()
        if self.store is not None:
            await self.store.close()
        log.info("runtime.stopped", tenant=self.config.tenant, processed=self.processed)

    async def _connect(self) -> None:
        assert self.connector is not None
        delay = 0.5
        while True:
            try:
                await self.connector.connect()
                return
            except ConnectorError as exc:
                log.warning("runtime.broker_unreachable", error=exc.message, delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)

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

    async def _make_sealer(self) -> Sealer | None:
        cfg = self.config
        token = cfg.hub.resolved_token() if cfg.hub else None
        if self.keystore is None or cfg.hub is None or token is None:
            log.info(
                "runtime.no_sealer", reason="configure [keystore] and [hub] to send and open sealed events"
            )
            return None
        try:
            directory_mod = importlib.import_module("connectors.directory")
            sealing_mod = importlib.import_module("connectors.sealing")
        except ImportError:
            log.warning("runtime.no_sealer", reason="connectors.sealing is not available")
            return None
        self._directory = directory_mod.Directory(cfg.hub.url, token)
        try:
            await self._directory.register(self.keystore.public_jwks())
        except Exception as exc:
            log.warning("runtime.key_registration_failed", error=type(exc).__name__)
        sealer: Sealer = sealing_mod.Sealer(self.keystore, self._directory, cfg.tenant)
        return sealer

    def _make_sinks(self) -> list[Sink]:
        sinks: list[Sink] = []
        for i, (name, sc) in enumerate(zip(self.config.sink_names(), self.config.sinks, strict=True)):
            if isinstance(sc, WebhookSinkConfig):
                sinks.append(WebhookSink(name, sc, sc.resolved_secret(f"sinks.{i}")))
            elif isinstance(sc, FolderSinkConfig):
                sinks.append(FolderSink(name, sc))
            elif isinstance(sc, StdoutSinkConfig):
                sinks.append(StdoutSink(name, sc))
        return sinks

    async def _on_gap(self, expected: int, got: int) -> None:
        self.gaps += 1
        if self.store is not None:
            await self.store.set_state("resync_needed_from", str(expected))
        log.warning("runtime.resync_needed", expected=expected, got=got)

    # -- the inbox ----------------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self.connector is not None
        async for message in self.connector.inbox(prefetch=self.config.broker.prefetch):
            await self.handle(message)

    async def handle(self, message: InboxMessage) -> None:
        assert self.store is not None
        event, payload = message.event, message.payload
        if payload is None:
            log.error(
                "runtime.cannot_open",
                event_id=event.id,
                type=event.type,
                reason="a signed or sealed event needs [keystore] and [hub] configured",
            )
            await message.reject(requeue=False)
            return
        if isinstance(payload, TemplatePublished):
            await self.store.save_template(
                payload.template_id, payload.version, payload.publisher, payload.model_dump(mode="json")
            )
        body = delivery_body(event, payload)
        targets = [s for s in self.sinks if s.accepts(event.type)]
        for sink in targets:
            if not sink.durable:
                await self._deliver_now(sink, event.id, body)
        await self.store.accept(event, [(s.name, body) for s in targets if s.durable])
        await message.ack()
        self.processed += 1
        for worker in self.workers:
            worker.wake.set()

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
