"""What metrics and tracing cost the router: the one-router ping throughput (as in
`bench.throughput`) with the router's metrics port served and every span recorded
(`OTEL_TRACES_SAMPLER=always_on`, no exporter), against the same run without either (the
default: no metrics port, spans not sampled). Runs alternate off, on, on, off ... so a drift of
the machine during the section weighs on both; the figure is the ratio of the medians. Beside
it, the router's own CPU time per event (its busy cores over its rate), which a busy machine
sways less than a rate."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from bench import throughput
from bench.deployment import Deployment

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
    }
