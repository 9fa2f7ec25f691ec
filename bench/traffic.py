"""Sending and receiving for the benchmarks: sender connectors, receiver connectors, and a
bulk inbox reader (one admin connection consuming many inboxes) for fan-out sized runs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench.deployment import Deployment, Tenant
from connectors import Connector, InboxMessage
from schemas.envelope import CloudEvent


async def open_connectors(tenants: Iterable[Tenant], limit: int = 16) -> dict[str, Connector]:
    sem = asyncio.Semaphore(limit)
    out: dict[str, Connector] = {}

    async def one(t: Tenant) -> None:
        async with sem:
            c = Connector(t.code, t.url, inbox_name=t.inbox, system="bench", heartbeat=60)
            await c.connect()
            out[t.code] = c

    await asyncio.gather(*(one(t) for t in tenants))
    return out


async def close_connectors(connectors: dict[str, Connector]) -> None:
    await asyncio.gather(*(c.close() for c in connectors.values()))


async def publish_all(
    connectors: dict[str, Connector], events: Sequence[tuple[str, CloudEvent]], in_flight: int = 16
) -> float:
    """Publish (sender code, event) pairs, each sender in order with `in_flight` confirms
    outstanding; returns seconds taken. Order within a sender is kept per batch of in_flight."""
    by_sender: dict[str, list[CloudEvent]] = {}
    for code, ev in events:
        by_sender.setdefault(code, []).append(ev)
    start = time.perf_counter()

    async def sender(code: str, evs: list[CloudEvent]) -> None:
        c = connectors[code]
        for i in range(0, len(evs), in_flight):
            await asyncio.gather(*(c.publish(ev) for ev in evs[i : i + in_flight]))

    await asyncio.gather(*(sender(code, evs) for code, evs in by_sender.items()))
    return time.perf_counter() - start


@dataclass
class Arrivals:
    """Arrival times (perf_counter) and what came; `done` is set when `expected` arrived."""

    expected: int
    times: list[float] = field(default_factory=list)
    types: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, kind: str | None = None, latency_ms: float | None = None) -> None:
        self.times.append(time.perf_counter())
        if kind:
            self.types[kind] = self.types.get(kind, 0) + 1
        if latency_ms is not None:
            self.latencies_ms.append(latency_ms)
        if len(self.times) >= self.expected:
            self.done.set()

    def reset(self, expected: int) -> None:
        self.expected = expected
        self.times.clear()
        self.types.clear()
        self.latencies_ms.clear()
        self.done = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), timeout)
        return self.done.is_set()

    async def wait_quiet(self, timeout: float, quiet: float = 10.0) -> bool:
        """Until `expected` arrived, or nothing arrived for `quiet` s after the first, or timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.done.is_set() and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), 1.0)
            if self.times and time.perf_counter() - self.times[-1] > quiet:
                break
        return self.done.is_set()

    def rate(self) -> float:
        """Steady rate between the first and the last arrival (start-up excluded)."""
        if len(self.times) < 2:
            return 0.0
        span = max(self.times) - min(self.times)
        return (len(self.times) - 1) / span if span > 0 else 0.0


class ConnectorReceivers:
    """Receiver connectors reading their inboxes through the SDK (parse, dedupe, validate, ack)."""

    def __init__(
        self,
        connectors: dict[str, Connector],
        arrivals: Arrivals,
        on_message: Callable[[InboxMessage], float | None] | None = None,
    ) -> None:
        self.connectors = connectors
        self.arrivals = arrivals
        self.on_message = on_message
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for c in self.connectors.values():
            self._tasks.append(asyncio.create_task(self._read(c)))

    async def _read(self, c: Connector) -> None:
        async for message in c.inbox(prefetch=64):
            latency = self.on_message(message) if self.on_message else None
            await message.ack()
            self.arrivals.add(message.event.type, latency)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


class BulkReader:
    """Consumes many inboxes over the hub's admin connection: cheap enough for 400 inboxes,
    and it counts arrivals without parsing (the router sets the AMQP `type` property)."""

    def __init__(
        self, dep: Deployment, codes: Sequence[str], arrivals: Arrivals, prefetch: int = 256
    ) -> None:
        self.dep = dep
        self.codes = list(codes)
        self.arrivals = arrivals
        self.prefetch = prefetch
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        conn = await self.dep.admin()
        self._channel = await conn.channel()
        await self._channel.set_qos(prefetch_count=self.prefetch)
        for code in self.codes:
            queue = await self._channel.get_queue(self.dep.tenants[code].inbox, ensure=False)
            await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.arrivals.add(message.type)

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
