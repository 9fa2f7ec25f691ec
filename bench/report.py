"""The run's report: a rich table with ratios against the relay and the targets, the JSON
result file, and a PNG with one panel per section."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

# Issue 18's rows ("Speed where the mission's data flows"); a target is raised, never lowered.
TARGETS = {
    "throughput": "hub ping ≥ 0.9 × plain relay, one router",
    "sealed": "sealed transfer.offered ≥ 0.5 × plain relay, one router",
    "routers": "sealed, 2 routers ≥ 1.6 × one router",
    "pipeline": "pipeline ≥ 500 ev/s (HTTP source → connectors → hub → webhook), lost 0, duplicated 0",
    "latency": "p99 < 25 ms at 500 events/s",
    "fanout": "fan-out to 400 < 2 s",
    "national_day": "national day ≥ 1,000 ev/s",
    "memory": "RSS growth < 5 % from 100k to 500k events",
    "observability": "one-router ping with metrics and tracing ≥ 0.95 × without",
}


def _ok(results: dict[str, Any]) -> dict[str, Any]:
    """The sections that produced figures (a failed one holds only its error)."""
    return {k: v for k, v in results.items() if not (isinstance(v, dict) and "error" in v)}


def ratio(results: dict[str, Any], rate: float) -> float | None:
    base = (results.get("relay") or {}).get("concurrent", {}).get("msgs_per_s")
    return rate / base if base else None


def router_cores(row: dict[str, Any]) -> float:
    """CPU the row's router processes used together, in cores."""
    return float(sum(v for k, v in (row.get("cpu_cores") or {}).items() if k.startswith("router")))


def growth(results: dict[str, Any], row: dict[str, Any]) -> float | None:
    """A throughput row's rate over the one-router rate of the same kind in the same run."""
    for one in results.get("throughput") or []:
        if one["kind"] == row["kind"] and one["routers"] == 1 and one["msgs_per_s"]:
            return float(row["msgs_per_s"]) / float(one["msgs_per_s"])
    return None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    results = _ok(results)
    out = []
    for row in results.get("throughput") or []:
        if row["routers"] == 1 and row["kind"] in ("ping", "sealed"):
            r = ratio(results, row["msgs_per_s"])
            value = f"{r:.2f} ×" if r else "n/a"
            key, floor = ("throughput", 0.9) if row["kind"] == "ping" else ("sealed", 0.5)
            out.append({"target": TARGETS[key], "value": value, "met": bool(r and r >= floor)})
        if row["routers"] == 2 and row["kind"] == "sealed" and (g := growth(results, row)):
            out.append({"target": TARGETS["routers"], "value": f"{g:.2f} ×", "met": g >= 1.6})
    if rows := results.get("pipeline"):
        best = max(rows, key=lambda r: r["events_per_s"])
        clean = all(r["lost"] == 0 and r["duplicated"] == 0 for r in rows)
        r = ratio(results, best["events_per_s"])
        out.append(
            {
                "target": TARGETS["pipeline"],
                "value": f"{best['events_per_s']:,.0f} ev/s ({best['post']}"
                + (f", {r:.2f} × relay" if r else "")
                + ")"
                + ("" if clean else ", events lost or doubled"),
                "met": clean and best["events_per_s"] >= 500,
            }
        )
    for row in results.get("latency") or []:
        if row["offered_per_s"] == 500:
            out.append(
                {
                    # Judged on the run's store; issue 18 sets it for PostgreSQL and asks for
                    # SQLite's figure beside it.
                    "target": f"{TARGETS['latency']} ({results['machine']['database']})",
                    "value": f"p99 {row['p99_ms']} ms",
                    "met": row["complete"] and row["p99_ms"] < 25,
                }
            )
    if fan := results.get("fanout"):
        note = "" if fan["members"] == 400 else f" (measured with {fan['members']})"
        out.append(
            {
                "target": TARGETS["fanout"],
                "value": f"{fan['worst_all_s']:.3f} s worst{note}",
                "met": fan["worst_all_s"] < 2.0,
            }
        )
    if nat := results.get("national_day"):
        out.append(
            {
                "target": TARGETS["national_day"],
                "value": f"{nat['events_per_s']:,.0f} ev/s",
                "met": nat["events_per_s"] >= 1000,
            }
        )
    if mem := results.get("memory"):
        a, b = mem["checkpoints"][0], mem["checkpoints"][-1]
        scale = "" if (a, b) == (100_000, 500_000) else f" (here {a:,}→{b:,})"
        out.append(
            {
                "target": TARGETS["memory"] + scale,
                "value": f"{mem['growth_pct']:+.1f} %",
                "met": mem["growth_pct"] < 5,
            }
        )
    if obs := results.get("observability"):
        r = obs["ratio"]
        out.append(
            {
                "target": TARGETS["observability"],
                "value": f"{r:.3f} × ({obs['on_msgs_per_s']} vs {obs['off_msgs_per_s']} msgs/s)"
                if r
                else "n/a",
                "met": bool(r and r >= 0.95),
            }
        )
    return out


def table(results: dict[str, Any]) -> Table:
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    results = _ok(results)
    m = results["machine"]
    t = Table(
        title=f"Inbeeld hub benchmark — {m['date']} · {m['cores']} cores {m['cpu']} · "
        f"RabbitMQ {m['rabbitmq']} · {m['database']} · {results['mode']}"
    )
    for col in ("section", "measurement", "value", "÷ relay / note"):
        t.add_column(col, justify="left" if col in ("section", "measurement") else "right")
    if relay := results.get("relay"):
        for mode, row in relay.items():
            note = "baseline" if mode == "concurrent" else f"{ratio(results, row['msgs_per_s']):.2f} ×"
            t.add_row(
                "relay",
                f"plain aio-pika, {mode}, {row['body_bytes']} B",
                f"{row['msgs_per_s']:,.0f} msg/s",
                note,
            )
    for row in results.get("throughput") or []:
        r = ratio(results, row["msgs_per_s"])
        flag = "" if row["complete"] else f" ({row['received']}/{row['events']} only)"
        note = f"{r:.2f} ×" if r else ""
        if row["routers"] > 1 and (g := growth(results, row)):
            # Several routers: what they add over one, and the CPU they got on this machine
            # (the broker, the store and the bench's own clients share its cores with them).
            note += f" · {g:.2f} × 1 router · {router_cores(row):.2f} cores"
        t.add_row(
            "throughput",
            f"{row['event']}, {row['body_bytes']} B, {row['routers']} router(s)",
            f"{row['msgs_per_s']:,.0f} ev/s{flag}",
            note,
        )
    for row in results.get("pipeline") or []:
        r = ratio(results, row["events_per_s"])
        t.add_row(
            "pipeline",
            f"{row['event']}, {row['events']:,} posted ({row['post']}), HTTP source → webhook",
            f"{row['events_per_s']:,.0f} ev/s",
            (f"{r:.2f} × · " if r else "") + f"lost {row['lost']} · duplicated {row['duplicated']}",
        )
    base = {r["offered_per_s"]: r for r in results.get("latency_relay") or []}
    for row in results.get("latency") or []:
        notes = ["saturated"] if row["saturated"] else []
        if relay_row := base.get(row["offered_per_s"]):
            notes.append(f"relay p50 {relay_row['p50_ms']} · p99 {relay_row['p99_ms']} ms")
        t.add_row(
            "latency",
            f"{row['offered_per_s']}/s offered ({row['delivered_per_s']:,.0f}/s delivered)",
            f"p50 {row['p50_ms']} · p95 {row['p95_ms']} · p99 {row['p99_ms']} ms",
            " · ".join(notes),
        )
    if fan := results.get("fanout"):
        t.add_row(
            "fan-out",
            f"{fan['event']} to {fan['members']} tenants",
            f"median {fan['median_all_s']:.3f} s · worst {fan['worst_all_s']:.3f} s",
            f"{fan['deliveries_per_s']:,.0f} deliveries/s",
        )
    if nat := results.get("national_day"):
        t.add_row(
            "national day",
            f"{nat['events']:,} mixed events, {nat['municipalities']} municipalities",
            f"{nat['events_per_s']:,.0f} ev/s",
            f"100k in {nat['projected_100k_s']:,.0f} s"
            + (f", {nat['rejected']} rejected" if nat["rejected"] else ""),
        )
    if mem := results.get("memory"):
        marks = " → ".join(f"{v} MiB@{int(k):,}" for k, v in mem["rss_mib"].items())
        t.add_row(
            "memory",
            f"router RSS: {mem['rss_start_mib']} MiB at start → {marks}",
            f"{mem['growth_pct']:+.1f} %",
            f"{mem['events_per_s']:,.0f} ev/s",
        )
    if obs := results.get("observability"):
        t.add_row(
            "observability",
            f"{obs['event']}: metrics and tracing on (no exporter) vs off",
            f"{obs['on_msgs_per_s']:,.0f} vs {obs['off_msgs_per_s']:,.0f} ev/s",
            f"{obs['ratio']:.3f} ×" if obs["ratio"] else "",
        )
        spans, share = obs.get("span_us_per_event"), obs.get("span_share_of_router_cpu")
        if spans and share is not None:
            t.add_row(
                "observability",
                "recording the router's spans, per event (alone), and its share of router CPU",
                f"{spans['on']:,.1f} vs {spans['off']:,.1f} µs",
                f"{share:.1%}",
            )
        cpu = obs.get("router_cpu_us_per_event") or {}
        if cpu.get("on") and cpu.get("off"):
            t.add_row(
                "observability",
                "router CPU per event, on vs off (median)",
                f"{cpu['on']:,.0f} vs {cpu['off']:,.0f} µs",
                f"{cpu['off'] / cpu['on']:.3f} ×",
            )
    for name in failed:
        t.add_row(name, "[red]failed[/]", "", "see the JSON")
    for row in targets(results):
        t.add_row("target", row["target"], row["value"], "[green]met[/]" if row["met"] else "[red]missed[/]")
    return t


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_png(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = _ok(results)
    fig, axes = plt.subplots(3, 2, figsize=(12, 12))
    m = results["machine"]
    fig.suptitle(f"Inbeeld hub benchmark · {m['date']} · {m['cores']} cores · RabbitMQ {m['rabbitmq']}")
    ax = axes[0][0]
    labels, values = [], []
    for mode, row in (results.get("relay") or {}).items():
        labels.append(f"relay\n{mode}")
        values.append(row["msgs_per_s"])
    for row in results.get("throughput") or []:
        labels.append(f"hub {row['kind']}\n{row['routers']} router")
        values.append(row["msgs_per_s"])
    n_relay = len(results.get("relay") or {})
    ax.bar(labels, values, color=["grey"] * n_relay + ["tab:blue"] * (len(values) - n_relay))
    ax.set_title("throughput (messages/s)")
    ax.tick_params(axis="x", labelsize=7)
    ax = axes[0][1]
    rows = results.get("latency") or []
    if rows:
        xs = [r["offered_per_s"] for r in rows]
        for p in ("p50_ms", "p95_ms", "p99_ms"):
            ax.plot(xs, [r[p] for r in rows], marker="o", label=p[:3])
        if base := results.get("latency_relay") or []:
            ax.plot(
                [r["offered_per_s"] for r in base],
                [r["p99_ms"] for r in base],
                color="grey",
                linestyle="--",
                marker="x",
                label="relay p99",
            )
        ax.axhline(25, color="red", linestyle=":", label="target p99 @500/s")
        ax.set_yscale("log")
        ax.set_xlabel("offered events/s")
        ax.legend()
    ax.set_title("end-to-end latency (ms)")
    ax = axes[1][0]
    if fan := results.get("fanout"):
        ax.bar(range(len(fan["runs"])), [r["all_s"] for r in fan["runs"]], color="tab:green")
        ax.axhline(2.0, color="red", linestyle=":")
        ax.set_xlabel("repetition")
    if nat := results.get("national_day"):
        text = f"national day: {nat['events_per_s']:,.0f} ev/s, 100k in {nat['projected_100k_s']} s"
        ax.text(0.02, 0.95, text, transform=ax.transAxes, va="top", fontsize=8)
    ax.set_title(f"fan-out to {fan['members'] if fan else '?'} inboxes (s)")
    ax = axes[1][1]
    if mem := results.get("memory"):
        ax.plot([s[0] for s in mem["samples"]], [s[1] for s in mem["samples"]], color="tab:purple")
        ax.set_xlabel("events routed")
    ax.set_title("router RSS (MiB)")
    _pipeline_panels(results, axes[2][0], axes[2][1])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pipeline_panels(results: dict[str, Any], rate_ax: Any, cpu_ax: Any) -> None:
    """The pipeline's ev/s beside the relay baseline of the same run, with its target; and the
    CPU each process of the pipeline used while it ran."""
    rows = results.get("pipeline") or []
    labels, values, colours = [], [], []
    if base := (results.get("relay") or {}).get("concurrent"):
        labels.append("relay\nconcurrent")
        values.append(base["msgs_per_s"])
        colours.append("grey")
    for row in rows:
        labels.append(f"pipeline\n{row['post']}")
        values.append(row["events_per_s"])
        colours.append("tab:orange")
    if values:
        bars = rate_ax.bar(labels, values, color=colours)
        rate_ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7)
        rate_ax.axhline(500, color="red", linestyle=":", label="target 500 ev/s")
        rate_ax.legend(fontsize=7)
        rate_ax.tick_params(axis="x", labelsize=7)
    rate_ax.set_title("pipeline: HTTP source → connectors → hub → webhook (ev/s)")
    for i, row in enumerate(rows):
        bottom = 0.0
        for j, (name, cores) in enumerate(sorted((row.get("cpu_cores") or {}).items())):
            cpu_ax.bar(i, cores, bottom=bottom, color=f"C{j}", label=name if i == 0 else None)
            bottom += cores
    if rows:
        cpu_ax.set_xticks(range(len(rows)), [r["post"] for r in rows], fontsize=7)
        cpu_ax.legend(fontsize=7)
    cpu_ax.set_title("pipeline: CPU per process (cores)")
