"""Hub throughput: events from sender connectors through `inbeeld router` processes to
receiver connectors, with one, two and three routers (competing consumers, appending to
the one audit log).

The router queue is filled first with the routers stopped, then the routers start and the
receivers time the drain from the first arrival to the last: the same shape as the relay
baseline (a prefilled quorum queue drained by one process), so the ratio compares like with
like, and neither the routers' start-up nor the senders' speed is in the figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from bench.deployment import CpuMeter, Deployment, broker_pid
from bench.payloads import PING, PING_TEXT_MAX, LocalDirectory, dossier, event, new_id, sealer_for
from bench.profile import Profiler
from bench.traffic import Arrivals, ConnectorReceivers, close_connectors, open_connectors, publish_all
from schemas.envelope import CloudEvent

TRANSFER_OFFERED = "nl.leerplicht.transfer.offered"


async def build(
    dep: Deployment, kind: str, n: int, senders: Sequence[str], receivers: Sequence[str]
) -> tuple[list[tuple[str, CloudEvent]], float]:
    """n events round-robin from senders to receivers; returns them and the seal rate (or 0)."""
    out: list[tuple[str, CloudEvent]] = []
    if kind == "ping":
        for i in range(n):
            s, r = senders[i % len(senders)], receivers[i % len(receivers)]
            out.append((s, event(s, PING, {"text": "x" * PING_TEXT_MAX}, [r])))
        return out, 0.0
    keystores = {c: t.keystore for c, t in dep.tenants.items() if t.keystore is not None}
    directory = LocalDirectory(keystores, {})
    sealers = {s: sealer_for(s, keystores, directory) for s in senders}
    start = time.perf_counter()
    for i in range(n):
        s, r = senders[i % len(senders)], receivers[i % len(receivers)]
        tid = new_id(f"tr-{s}")  # a transfer id names its offerer
        plain = event(s, TRANSFER_OFFERED, dossier(tid, s, r), [r], subject=tid)
        out.append((s, await sealers[s].seal(plain)))
    return out, n / (time.perf_counter() - start)


async def measure(
    dep: Deployment,
    kind: str,
    routers: int,
    n: int,
    senders: Sequence[str],
    receivers: Sequence[str],
    profiler: Profiler | None = None,
) -> dict[str, Any]:
    dep.stop_routers()
    events, seal_rate = await build(dep, kind, n, senders, receivers)
    size = sum(len(ev.to_bytes()) for _, ev in events[:50]) / min(50, len(events))
    send = await open_connectors(dep.tenants[c] for c in senders)
    recv = await open_connectors(dep.tenants[c] for c in receivers)
    arrivals = Arrivals(n)
    readers = ConnectorReceivers(recv, arrivals)
    try:
        publish_s = await publish_all(send, events)
        readers.start()
        started = await dep.start_routers(routers)
        cpu = CpuMeter(
            {
                "broker": broker_pid(),
                "bench (senders, receivers)": os.getpid(),
                **{f"router {i}": r.pid for i, r in enumerate(started)},
            }
        )
        if profiler is not None:
            profiler.attach(started[0].pid)
        complete = await arrivals.wait_quiet(timeout=120 + n / 20, quiet=15)
        cores = cpu.cores()
        if profiler is not None:
            profiler.detach()
    finally:
        await readers.stop()
        await close_connectors(send)
        await close_connectors(recv)
        dep.stop_routers()
    return {
        "event": "ping (200-char text)" if kind == "ping" else "transfer.offered (sealed)",
        "kind": kind,
        "routers": routers,
        "events": n,
        "received": len(arrivals.times),
        "complete": complete,
        "types": arrivals.types,
        "body_bytes": round(size),
        "senders": len(senders),
        "receivers": len(receivers),
        "prefill_events_per_s": round(n / publish_s, 1),
        "seal_per_s": round(seal_rate, 1) if seal_rate else None,
        "msgs_per_s": round(arrivals.rate(), 1),
        "cpu_cores": cores,  # cores each process kept busy while the routers drained the queue
    }
