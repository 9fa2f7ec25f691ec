"""Fan-out: one signed `template.published` from the association to a group of tenants;
the time from the publish call until every member's inbox has delivered it.

The inboxes are read over one admin connection (400 tenant connections would measure the
bench process, not the hub); the router resolves the group, checks the signature and
publishes one confirmed message per member.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.deployment import Deployment
from bench.payloads import LocalDirectory, event, sealer_for, template
from bench.traffic import Arrivals, BulkReader, close_connectors, open_connectors

TEMPLATE_PUBLISHED = "nl.leerplicht.template.published"


async def measure(
    dep: Deployment, publisher: str, group: str, members: Sequence[str], repetitions: int
) -> dict[str, Any]:
    keystores = {c: t.keystore for c, t in dep.tenants.items() if t.keystore is not None}
    sealer = sealer_for(publisher, keystores, LocalDirectory(keystores, {group: members}))
    dep.stop_routers()
    await dep.start_routers(1)
    send = await open_connectors([dep.tenants[publisher]])
    arrivals = Arrivals(len(members))
    reader = BulkReader(dep, members, arrivals)
    await reader.start()
    runs = []
    try:
        for k in range(repetitions + 1):  # the first is a warm-up
            signed = await sealer.seal(
                event(publisher, TEMPLATE_PUBLISHED, template(publisher, f"1.{k}.0"), [f"group:{group}"])
            )
            arrivals.reset(len(members))
            start = time.perf_counter()
            await send[publisher].publish(signed)
            complete = await arrivals.wait(timeout=120)
            if not complete:
                raise TimeoutError(f"{len(arrivals.times)} of {len(members)} inboxes had the template")
            if k:
                runs.append(
                    {
                        "first_s": round(min(arrivals.times) - start, 4),
                        "all_s": round(max(arrivals.times) - start, 4),
                    }
                )
        size = len(signed.to_bytes())
    finally:
        await reader.stop()
        await close_connectors(send)
        dep.stop_routers()
    alls = [r["all_s"] for r in runs]
    return {
        "event": "template.published (signed)",
        "members": len(members),
        "body_bytes": size,
        "repetitions": repetitions,
        "runs": runs,
        "median_all_s": round(statistics.median(alls), 4),
        "worst_all_s": round(max(alls), 4),
        "deliveries_per_s": round(len(members) / statistics.median(alls), 1),
    }
