"""What metrics and tracing cost the router: the one-router ping throughput (as in
`bench.throughput`) with the router's metrics port served and every span recorded
(`OTEL_TRACES_SAMPLER=always_on`, no exporter), against the same run without either (the
default: no metrics port, spans not sampled). Runs alternate off, on, on, off ... so a drift of
the machine during the section weighs on both; the figure is the ratio of the medians. Beside
it, the router's own CPU time per event (its busy cores over its rate), which a busy machine
sways less than a rate."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench import payloads, throughput
from bench.deployment import Deployment
from hub.router import _decide_span
from hub.tenants import TenantInfo
from schemas import tracing

ON = {"INBEELD_ROUTER_METRICS_PORT": "0", "OTEL_TRACES_SAMPLER": "always_on"}


async def measure(
    dep: Deployment, n: int, senders: Sequence[str], receivers: Sequence[str], rounds: int = 3
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu_us: dict[str, list[float]] = {"off": [], "on": []}
    order = [("off", "on"), ("on", "off")]
    try:
        for i in range(rounds):
            for mode in order[i % 2]:
                dep.router_extra_env = ON if mode == "on" else {}
                row = await throughput.measure(dep, "ping", 1, n, senders, receivers)
                if not row["complete"]:
                    raise RuntimeError(f"a {mode} run lost events: {row['received']} of {n}")
                rates[mode].append(row["msgs_per_s"])
                if (busy := row["cpu_cores"].get("router 0")) and row["msgs_per_s"]:
                    cpu_us[mode].append(round(busy / row["msgs_per_s"] * 1e6, 1))
    finally:
        dep.router_extra_env = {}
    spans = span_cost()
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    return {
        "event": "ping (200-char text), one router",
        "events": n,
        "runs_off": rates["off"],
        "runs_on": rates["on"],
        "off_msgs_per_s": round(off, 1),
        "on_msgs_per_s": round(on, 1),
        "ratio": round(on / off, 3) if off else None,
        "router_cpu_us_off": cpu_us["off"],
        "router_cpu_us_on": cpu_us["on"],
        "router_cpu_us_per_event": {
            mode: round(statistics.median(v), 1) if v else None for mode, v in cpu_us.items()
        },
        # What recording adds per event, measured alone (steadier than two rates), and its
        # share of the router's CPU time per event without it.
        "span_us_per_event": spans,
        "span_share_of_router_cpu": (
            round((spans["on"] - spans["off"]) / statistics.median(cpu_us["off"]), 4)
            if cpu_us["off"]
            else None
        ),
    }


def span_cost(events: int = 20_000, batch: int = 50) -> dict[str, float]:
    """CPU microseconds per event of the router's tracing work - its `router.decide` span with
    the outcome attributes, the traceparent every copy carries, and its share of a batch's
    `router.publish` and `router.confirm` spans with their links - off (the default) and on."""
    sender = TenantInfo("GM0001", "Bench GM0001", "municipality", None, True, "bench")
    event = payloads.stamped_ping("GM0001", "GM0005")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # the sender's publish
    event = event.model_copy(update={"traceparent": parent})
    out = {}
    for mode, record in (("off", False), ("on", True)):
        tracing.configure("inbeeld-bench", record=record)
        started = time.process_time()
        for _ in range(events // batch):
            decided = []
            for _ in range(batch):
                span = _decide_span(sender, event)
                span.set_attribute("inbeeld.outcome", "routed")
                span.set_attribute("inbeeld.recipients", 1)
                tracing.traceparent_of(span)
                span.end()
                decided.append(span)
            for name in ("router.publish", "router.confirm"):
                tracing.start(name, links=tracing.link_to(decided)).end()
        out[mode] = round((time.process_time() - started) / events * 1e6, 1)
    tracing.configure("inbeeld-bench", record=False)
    return out
