"""The connector's metrics port: GET /metrics serves the process's metrics
(`connectors.metrics`) and the outbox counted in the local store at that moment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Iterator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from connectors.config import MetricsConfig
from connectors.store import LocalStore


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The runtime owns the process's signals; uvicorn must not take them over.
        yield


class OutboxGauge(Collector):
    """`inbeeld_connector_outbox_items{sink,status}` from the last `refresh()`."""

    def __init__(self, store: LocalStore, sinks: list[str]) -> None:
        self.store = store
        self.sinks = sinks
        self.counts: dict[str, dict[str, int]] = {}

    async def refresh(self) -> None:
        self.counts = {sink: await self.store.outbox_counts(sink) for sink in self.sinks}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "inbeeld_connector_outbox_items",
            "Items in the outbox of each durable sink, by status (pending, delivered, ...).",
            labels=["sink", "status"],
        )
        for sink, counts in sorted(self.counts.items()):
            for status, n in sorted(counts.items()):
                gauge.add_metric([sink, status], n)
        yield gauge


class MetricsPort:
    def __init__(self, config: MetricsConfig, store: LocalStore, durable_sinks: list[str]) -> None:
        self.config = config
        self.outbox = OutboxGauge(store, durable_sinks)
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self.outbox)
        app = Starlette(routes=[Route("/metrics", self._metrics)])
        self.server = _QuietServer(
            uvicorn.Config(app, host=config.host, port=config.port, log_level="warning", lifespan="off")
        )
        self._serving: asyncio.Task[None] | None = None

    @property
    def port(self) -> int | None:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return None

    async def _metrics(self, _request: Request) -> Response:
        await self.outbox.refresh()
        body = generate_latest(REGISTRY) + generate_latest(self._registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def start(self) -> None:
        """Listen; `OSError` if the port cannot be had."""
        self._serving = asyncio.create_task(self.server.serve(), name="metrics-port")
        while not self.server.started:
            done, _ = await asyncio.wait({self._serving}, timeout=0.02)
            if done:
                raise OSError(f"the metrics port cannot listen on {self.config.host}:{self.config.port}")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._serving is not None:
            await asyncio.gather(self._serving, return_exceptions=True)
