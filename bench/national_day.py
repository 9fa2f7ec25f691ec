"""A national day (DESIGN section 8): a mixed stream across the 342 municipalities, routed
at the hub's maximum rate by one router, and the time it would need for 100,000 events.

The mix, in events: ~85 % pupil transfers (offered -> accepted -> completed, 5 % rejected;
all sealed), ~15 % neighbour notices (pupil_missing to the asker's region of ~12, signed;
pupil_found by one neighbour in half of them, sealed; notice.closed to the region, signed),
and one template release per 20,000 events (signed, to every municipality). Every event is
sealed or signed by its sender's keystore before the clock starts, and sent in three waves
(opening events, answers, closings) so each flow reaches the router in its causal order.
The router queue is filled first, then the router starts; the rate is events routed per
second between the first and the last delivery.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from bench.deployment import Deployment
from bench.payloads import (
    LocalDirectory,
    dossier,
    event,
    new_id,
    pupil_found,
    pupil_missing,
    sealer_for,
    template,
)
from bench.traffic import Arrivals, BulkReader, close_connectors, open_connectors, publish_all
from schemas.envelope import CloudEvent

P = "nl.leerplicht."
REGION_SIZE = 12
TRANSFER_SHARE = 0.85
EVENTS_PER_TRANSFER = 2.9  # offered + 95 % (accepted + completed) + 5 % rejected
EVENTS_PER_NOTICE = 2.5  # missing + 50 % found + closed
TEMPLATE_EVERY = 20_000


def regions(municipalities: Sequence[str]) -> dict[str, list[str]]:
    return {
        f"region-{i // REGION_SIZE + 1:02d}": list(municipalities[i : i + REGION_SIZE])
        for i in range(0, len(municipalities), REGION_SIZE)
    }


def plan(
    n: int, municipalities: Sequence[str], publisher: str, all_group: str, seed: int = 11
) -> list[list[tuple[str, str, dict[str, Any], list[str]]]]:
    """Three waves of (sender, short type, payload, recipients)."""
    rnd = random.Random(seed)
    waves: list[list[tuple[str, str, dict[str, Any], list[str]]]] = [[], [], []]
    groups = regions(municipalities)
    region_of = {m: g for g, ms in groups.items() for m in ms}
    for _ in range(round(n * TRANSFER_SHARE / EVENTS_PER_TRANSFER)):
        a, b = rnd.sample(list(municipalities), 2)
        tid = new_id(f"tr-{a}")  # a transfer id names its offerer
        waves[0].append((a, "transfer.offered", dossier(tid, a, b), [b]))
        if rnd.random() < 0.05:
            waves[1].append((b, "transfer.rejected", {"transfer_id": tid, "reason": "not_resident"}, [a]))
        else:
            waves[1].append((b, "transfer.accepted", {"transfer_id": tid, "note": "Zaak overgenomen."}, [a]))
            waves[2].append((a, "transfer.completed", {"transfer_id": tid}, [b]))
    for _ in range(round(n * (1 - TRANSFER_SHARE) / EVENTS_PER_NOTICE)):
        a = rnd.choice(list(municipalities))
        group = region_of[a]
        nid = new_id("nt")
        waves[0].append((a, "notice.pupil_missing", pupil_missing(nid), [f"group:{group}"]))
        neighbours = [m for m in groups[group] if m != a]
        if neighbours and rnd.random() < 0.5:
            waves[1].append((rnd.choice(neighbours), "notice.pupil_found", pupil_found(nid), [a]))
        reason = "found" if neighbours else "withdrawn"
        waves[2].append((a, "notice.closed", {"notice_id": nid, "reason": reason}, [f"group:{group}"]))
    for k in range(max(1, n // TEMPLATE_EVERY)):
        release = template(publisher, f"2.{k}.0")
        waves[0].append((publisher, "template.published", release, [f"group:{all_group}"]))
    for wave in waves:
        rnd.shuffle(wave)
    return waves


async def measure(
    dep: Deployment, n: int, municipalities: Sequence[str], publisher: str, all_group: str
) -> dict[str, Any]:
    groups = {**regions(municipalities), all_group: list(municipalities)}
    keystores = {c: t.keystore for c, t in dep.tenants.items() if t.keystore is not None}
    directory = LocalDirectory(keystores, groups)
    waves = plan(n, municipalities, publisher, all_group)
    sealers = {c: sealer_for(c, keystores, directory) for c in [*municipalities, publisher]}
    sealed_waves: list[list[tuple[str, CloudEvent]]] = []
    deliveries = 0
    counts: dict[str, int] = {}
    start = time.perf_counter()
    for wave in waves:
        out = []
        for sender, short, data, recipients in wave:
            subject = data.get("transfer_id") or data.get("notice_id")  # the workflows read it there
            ev = await sealers[sender].seal(event(sender, P + short, data, recipients, subject=subject))
            out.append((sender, ev))
            counts[short] = counts.get(short, 0) + 1
            for r in recipients:
                deliveries += len(groups[r[6:]]) - (sender in groups[r[6:]]) if r.startswith("group:") else 1
        sealed_waves.append(out)
    seal_s = time.perf_counter() - start
    total = sum(len(w) for w in sealed_waves)
    dep.stop_routers()
    await dep.purge_inboxes([*municipalities, publisher])
    arrivals = Arrivals(deliveries)
    reader = BulkReader(dep, [*municipalities, publisher], arrivals)
    senders = {s for w in sealed_waves for s, _ in w}
    conns = await open_connectors(dep.tenants[c] for c in senders)
    try:
        publish_s = 0.0
        for wave_events in sealed_waves:
            publish_s += await publish_all(conns, wave_events, in_flight=8)
        await close_connectors(conns)
        conns = {}
        await reader.start()
        await dep.start_routers(1)
        complete = await arrivals.wait_quiet(timeout=120 + total / 20)
    finally:
        await reader.stop()
        await close_connectors(conns)
        dep.stop_routers()
    span = (max(arrivals.times) - min(arrivals.times)) if len(arrivals.times) > 1 else float("nan")
    rate = total / span if span == span and span > 0 else 0.0
    return {
        "municipalities": len(municipalities),
        "regions": len(groups) - 1,
        "events": total,
        "by_type": dict(sorted(counts.items())),
        "deliveries_expected": deliveries,
        "deliveries": len(arrivals.times),
        "rejected": arrivals.types.get(P + "hub.rejected", 0),
        "complete": complete,
        "seal_per_s": round(total / seal_s, 1),
        "prefill_events_per_s": round(total / publish_s, 1) if publish_s else None,
        "events_per_s": round(rate, 1),
        "deliveries_per_s": round(len(arrivals.times) / span, 1) if rate else 0.0,
        "projected_100k_s": round(100_000 / rate, 1) if rate else None,
    }
