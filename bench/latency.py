"""End-to-end latency, connector to connector, at fixed offered rates.

Each ping carries its send time (ns) at the start of its text; the sender is paced with
asyncio (every event is published on its schedule, not after the previous confirm), and the
receiver connectors subtract on arrival. Sender and receivers share one clock (this process).
When the hub cannot keep up with the offered rate, latency grows with the run's length: the
row is then marked saturated and the achieved delivery rate says by how much.

The baseline (`relay_baseline`, same rates, same run): the plain aio-pika relay of
`bench.relay` between two quorum queues, the two broker hops a hub event takes without the
hub, so what the hub adds to the latency is the difference.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from bench import relay
from bench.deployment import Deployment
from bench.payloads import stamp_of, stamped_ping
from bench.traffic import Arrivals, ConnectorReceivers, close_connectors, open_connectors
from connectors import Connector, InboxMessage

PING_BYTES = 509  # a stamped ping's body through the hub, so both paths carry the same size


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))  # nearest rank
    return ordered[k]


def _latency(message: InboxMessage) -> float | None:
    sent = stamp_of(message.event.data)
    return None if sent is None else (time.time_ns() - sent) / 1e6


async def _paced(senders: list[Connector], receivers: Sequence[str], rate: float, n: int) -> float:
    count = iter(range(n))

    async def send_one() -> None:
        i = next(count)
        c = senders[i % len(senders)]
        await c.publish(stamped_ping(c.tenant, receivers[i % len(receivers)]))

    return await _paced_calls(send_one, rate, n, asyncio.get_running_loop())


def _row(rate: int, offered: float, n: int, arrivals: Arrivals, complete: bool) -> dict[str, Any]:
    lat = arrivals.latencies_ms
    delivered = arrivals.rate()
    return {
        "offered_per_s": rate,
        "sent_per_s": round(offered, 1),
        "delivered_per_s": round(delivered, 1),
        "events": n,
        "received": len(lat),
        "complete": complete,
        "saturated": delivered < 0.95 * rate,
        "p50_ms": round(percentile(lat, 50), 2),
        "p95_ms": round(percentile(lat, 95), 2),
        "p99_ms": round(percentile(lat, 99), 2),
        "max_ms": round(max(lat), 2) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 2) if lat else None,
    }


async def relay_baseline(dep: Deployment, rates: Sequence[int], seconds: float) -> list[dict[str, Any]]:
    """The same offered rates through the plain aio-pika relay (bench.relay): a publisher with
    confirms into a quorum queue, the relay process republishing with confirms into a second
    one, a consumer reading it - the two broker hops every hub event takes, without the hub.
    A message carries its send time; the consumer subtracts on arrival (one clock)."""
    conn = await dep.admin()
    channel = await conn.channel(publisher_confirms=True)
    await relay.declare(channel)
    reader = await conn.channel()
    await reader.set_qos(prefetch_count=256)
    arrivals = Arrivals(0)

    async def on_out(message: AbstractIncomingMessage) -> None:
        sent = int(message.body.split(b";", 1)[0])
        arrivals.add(latency_ms=(time.time_ns() - sent) / 1e6)

    await (await reader.get_queue(relay.DST)).consume(on_out, no_ack=True)
    proc = relay.start(dep)
    loop = asyncio.get_running_loop()

    async def publish_one() -> None:
        body = f"{time.time_ns()};".encode().ljust(PING_BYTES, b"x")
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, routing_key=relay.SRC)

    rows = []
    try:
        arrivals.reset(50)
        await _paced_calls(publish_one, 100, 50, loop)
        await arrivals.wait(30)
        for rate in rates:
            n = max(int(rate * seconds), 20)
            arrivals.reset(n)
            offered = await _paced_calls(publish_one, rate, n, loop)
            complete = await arrivals.wait(timeout=60 + n / 100)
            rows.append(_row(rate, offered, n, arrivals, complete))
    finally:
        proc.terminate()
        proc.join(10)
        await reader.close()
        await channel.close()
    return rows


async def _paced_calls(
    call: Callable[[], Awaitable[None]], rate: float, n: int, loop: asyncio.AbstractEventLoop
) -> float:
    """`call` n times on a schedule of `rate` per second, each not waiting for the previous."""
    start = loop.time()
    tasks: set[asyncio.Task[None]] = set()
    sent = 0
    while sent < n:
        due = min(n, int((loop.time() - start) * rate) + 1)
        while sent < due:
            task = asyncio.create_task(call())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
    if tasks:
        await asyncio.gather(*tasks)
    return n / (loop.time() - start)


async def measure(
    dep: Deployment, rates: Sequence[int], seconds: float, senders: Sequence[str], receivers: Sequence[str]
) -> list[dict[str, Any]]:
    dep.stop_routers()
    await dep.start_routers(1)
    send = await open_connectors(dep.tenants[c] for c in senders)
    recv = await open_connectors(dep.tenants[c] for c in receivers)
    arrivals = Arrivals(0)
    readers = ConnectorReceivers(recv, arrivals, on_message=_latency)
    readers.start()
    rows = []
    try:
        # Warm up: connections, the router's caches, the store's pages.
        arrivals.reset(50)
        await _paced(list(send.values()), receivers, 100, 50)
        await arrivals.wait(30)
        for rate in rates:
            n = max(int(rate * seconds), 20)
            arrivals.reset(n)
            offered = await _paced(list(send.values()), receivers, rate, n)
            complete = await arrivals.wait(timeout=60 + n / 100)
            rows.append(_row(rate, offered, n, arrivals, complete))
    finally:
        await readers.stop()
        await close_connectors(send)
        await close_connectors(recv)
        dep.stop_routers()
    return rows
