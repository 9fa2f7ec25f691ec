"""Router memory: the RSS of a fresh `inbeeld router` process at start and after routing
N1 and N2 events (pings, the cheapest to produce, so the run is about the router).

Senders publish raw AMQP as their tenants (same bytes as the SDK, without its per-event
pydantic cost) and keep at most `window` events in flight ahead of the deliveries, so the
queues stay short and the broker's memory does not creep into the picture. RSS is sampled
every half second for the plot.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aio_pika

from bench.deployment import Deployment
from bench.payloads import PING, PING_TEXT_MAX, event
from bench.traffic import Arrivals, BulkReader
from hub.broker.topology import INGRESS


async def measure(
    dep: Deployment,
    checkpoints: Sequence[int],
    senders: Sequence[str],
    receivers: Sequence[str],
    window: int = 1000,
) -> dict[str, Any]:
    dep.stop_routers()
    await dep.purge_inboxes(receivers)
    (router,) = await dep.start_routers(1)
    await asyncio.sleep(1.0)
    rss_start = router.rss()
    total = max(checkpoints)
    arrivals = Arrivals(total)
    reader = BulkReader(dep, receivers, arrivals, prefetch=1024)
    await reader.start()
    templates = []
    for i, s in enumerate(senders):
        ev = event(s, PING, {"text": "x" * PING_TEXT_MAX}, [receivers[i % len(receivers)]])
        templates.append(ev.model_dump(mode="json", exclude_none=True))
    conns = [await aio_pika.connect(dep.tenants[s].url) for s in senders]
    channels = [await c.channel(publisher_confirms=True) for c in conns]
    exchanges = [await ch.get_exchange(INGRESS, ensure=False) for ch in channels]
    samples: list[tuple[int, int]] = [(0, rss_start)]
    at: dict[int, int] = {}
    sent = 0
    stop = asyncio.Event()

    async def sampler() -> None:
        next_mark = sorted(checkpoints)
        while not stop.is_set():
            routed = len(arrivals.times)
            samples.append((routed, router.rss()))
            while next_mark and routed >= next_mark[0]:
                at[next_mark.pop(0)] = samples[-1][1]
            await asyncio.sleep(0.5)

    async def publish(i: int) -> None:
        k = i % len(senders)
        body = dict(templates[k], id=str(uuid.uuid4()))
        await exchanges[k].publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                user_id=dep.tenants[senders[k]].username,
            ),
            routing_key=PING,
        )

    sampling = asyncio.create_task(sampler())
    start = time.perf_counter()
    try:
        while sent < total:
            room = window - (sent - len(arrivals.times))
            if room <= window // 4:
                await asyncio.sleep(0.01)
                continue
            batch = min(room, total - sent, 200)
            await asyncio.gather(*(publish(sent + j) for j in range(batch)))
            sent += batch
        complete = await arrivals.wait(timeout=120 + total / 50)
        await asyncio.sleep(0.6)  # one more sample after the last event
    finally:
        stop.set()
        await sampling
        await reader.stop()
        for c in conns:
            await c.close()
        dep.stop_routers()
    elapsed = time.perf_counter() - start
    for mark in checkpoints:
        at.setdefault(mark, samples[-1][1])
    first, last = sorted(checkpoints)[0], sorted(checkpoints)[-1]
    return {
        "events": total,
        "routed": len(arrivals.times),
        "complete": complete,
        "events_per_s": round(len(arrivals.times) / elapsed, 1),
        "rss_start_mib": round(rss_start / 2**20, 1),
        "rss_mib": {str(k): round(v / 2**20, 1) for k, v in sorted(at.items())},
        "growth_pct": round(100 * (at[last] - at[first]) / at[first], 2),
        "growth_from_start_pct": round(100 * (at[last] - rss_start) / rss_start, 2),
        "checkpoints": sorted(checkpoints),
        "samples": [[n, round(r / 2**20, 2)] for n, r in samples],
    }
