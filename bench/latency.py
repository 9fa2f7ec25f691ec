"""End-to-end latency, connector to connector, at fixed offered rates.

Each ping carries its send time (ns) at the start of its text; the sender is paced with
asyncio (every event is published on its schedule, not after the previous confirm), and the
receiver connectors subtract on arrival. Sender and receivers share one clock (this process).
When the hub cannot keep up with the offered rate, latency grows with the run's length: the
row is then marked saturated and the achieved delivery rate says by how much.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.deployment import Deployment
from bench.payloads import stamp_of, stamped_ping
from bench.traffic import Arrivals, ConnectorReceivers, close_connectors, open_connectors
from connectors import Connector, InboxMessage


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
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks: set[asyncio.Task[Any]] = set()
    sent = 0
    while sent < n:
        due = min(n, int((loop.time() - start) * rate) + 1)
        while sent < due:
            c = senders[sent % len(senders)]
            ev = stamped_ping(c.tenant, receivers[sent % len(receivers)])
            task = asyncio.create_task(c.publish(ev))
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
            lat = arrivals.latencies_ms
            delivered = arrivals.rate()
            rows.append(
                {
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
            )
    finally:
        await readers.stop()
        await close_connectors(send)
        await close_connectors(recv)
        dep.stop_routers()
    return rows
