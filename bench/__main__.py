"""The hub benchmark against the local RabbitMQ, on a fresh vhost and database.

    python -m bench [--quick | --tiny]
                    [--only relay throughput pipeline latency fanout national_day memory observability]
                    [--postgres] [--profile [ping|sealed]] [--out bench/results]

Sections: the plain aio-pika relay (the baseline every hub figure is divided by), hub
throughput with one, two and three routers, the pipeline through connector processes (HTTP
source → sender connector → hub → receiver connector → webhook), end-to-end latency at
fixed rates, fan-out to a group of 400, a national day's mixed stream, the router's memory over
a long run, and what metrics and tracing cost the one-router throughput (observability). Prints
a table
with the targets met or missed and writes `bench-<time>.json` and `.png` under --out.
`python -m bench.crypto` and `python -m bench.letters` are separate micro-benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from bench import (
    fanout,
    latency,
    memory,
    national_day,
    observability,
    pipeline,
    relay,
    report,
    throughput,
)
from bench.deployment import BrokerTooSmall, Deployment, machine
from bench.profile import Profiler

SECTIONS = ("relay", "throughput", "pipeline", "latency", "fanout", "national_day", "memory", "observability")
RESULTS = Path(__file__).resolve().parent / "results"
PUBLISHER = "ingrado"
FANOUT_GROUP = "bench-fanout"
NATIONAL_GROUP = "bench-national"


@dataclass(frozen=True)
class Sizes:
    relay: int
    throughput: int
    latency_s: float
    rates: tuple[int, ...]
    tenants: int  # municipalities provisioned; the fan-out group is all of them
    municipalities: int  # of which the national day uses
    fanout_reps: int
    national: int
    memory: tuple[int, int]
    pipeline: int  # events through the connector processes


FULL = Sizes(20_000, 10_000, 10.0, (200, 500, 1000), 400, 342, 5, 20_000, (100_000, 500_000), 6_000)
QUICK = Sizes(3_000, 2_000, 3.0, (200, 500, 1000), 400, 342, 3, 3_000, (2_000, 10_000), 2_000)
TINY = Sizes(300, 100, 0.25, (200, 500, 1000), 24, 20, 1, 100, (200, 800), 100)

SENDERS = ("GM0001", "GM0002", "GM0003", "GM0004")
RECEIVERS = ("GM0005", "GM0006", "GM0007", "GM0008")
ROUTERS = (1, 2, 3)  # competing consumers of the router queue, all on the one store


def municipalities(n: int) -> list[str]:
    return [f"GM{i:04d}" for i in range(1, n + 1)]


async def run(args: argparse.Namespace, console: Console) -> tuple[dict[str, Any], bool]:
    sizes = TINY if args.tiny else QUICK if args.quick else FULL
    if args.national_events:
        sizes = Sizes(**{**sizes.__dict__, "national": args.national_events})
    if args.memory_events:
        sizes = Sizes(**{**sizes.__dict__, "memory": tuple(args.memory_events)})
    only = set(args.only or SECTIONS)
    if only & {"throughput", "pipeline"}:
        only.add("relay")  # a ratio needs its baseline from the same run
    if "latency" in only:
        only.add("latency_relay")  # and so does a latency
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir: Path = args.out
    json_path = out_dir / f"bench-{stamp}.json"
    ok = True

    dep = await Deployment.create(postgres=args.postgres)
    results: dict[str, Any] = {"mode": mode, "machine": await machine(dep.settings), "sizes": sizes.__dict__}
    console.print(f"vhost [bold]{dep.vhost}[/], store {results['machine']['database']}, mode {mode}")
    try:
        big = bool(only & {"fanout", "national_day"})
        codes = municipalities(sizes.tenants if big else 8)
        t0 = time.perf_counter()
        await dep.provision([(c, "municipality") for c in codes] + [(PUBLISHER, "association")])
        results["provisioning"] = {"tenants": len(codes) + 1, "seconds": round(time.perf_counter() - t0, 1)}
        if big:
            await dep.add_group(FANOUT_GROUP, codes)
            national = codes[: sizes.municipalities]
            await dep.add_group(NATIONAL_GROUP, national)
            for name, members in national_day.regions(national).items():
                await dep.add_group(name, members)
        profiler = Profiler(out_dir) if args.profile else None

        async def section(name: str, make: Callable[[], Awaitable[Any]]) -> None:
            nonlocal ok
            if name not in only:
                return
            console.print(f"[bold]{name}[/] …")
            t = time.perf_counter()
            try:
                results[name] = await make()
            except Exception as exc:  # one broken section must not hide the others' figures
                ok = False
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                console.print(f"[red]{name} failed[/]\n{traceback.format_exc()}")
            else:
                console.print(f"  done in {time.perf_counter() - t:.1f} s")
            report.write_json(results, json_path)

        async def relays() -> dict[str, Any]:
            return {
                "concurrent": await relay.measure(dep, sizes.relay),
                "serial": await relay.measure(dep, sizes.relay, serial=True),
            }

        async def throughputs() -> list[dict[str, Any]]:
            rows = []
            for kind in ("ping", "sealed"):
                # The smallest run skips the middle count: one router and the most routers.
                for routers in (ROUTERS[0], ROUTERS[-1]) if args.tiny else ROUTERS:
                    prof = profiler if (profiler and kind == args.profile and routers == 1) else None
                    rows.append(
                        await throughput.measure(
                            dep, kind, routers, sizes.throughput, SENDERS, RECEIVERS, prof
                        )
                    )
            return rows

        await section("relay", relays)
        await section("throughput", throughputs)

        async def pipelines() -> list[dict[str, Any]]:
            prof = out_dir if args.profile else None
            # One document per POST (as the fault suite sends), then arrays of BATCH.
            return [
                await pipeline.measure(
                    dep, sizes.pipeline, SENDERS[0], RECEIVERS[0], batch=batch, profile_dir=prof
                )
                for batch in (1, pipeline.BATCH)
            ]

        await section("pipeline", pipelines)
        await section("latency_relay", lambda: latency.relay_baseline(dep, sizes.rates, sizes.latency_s))
        await section(
            "latency", lambda: latency.measure(dep, sizes.rates, sizes.latency_s, SENDERS, RECEIVERS)
        )
        await section(
            "fanout", lambda: fanout.measure(dep, PUBLISHER, FANOUT_GROUP, codes, sizes.fanout_reps)
        )
        await section(
            "national_day",
            lambda: national_day.measure(
                dep, sizes.national, codes[: sizes.municipalities], PUBLISHER, NATIONAL_GROUP
            ),
        )
        await section("memory", lambda: memory.measure(dep, sizes.memory, SENDERS, RECEIVERS))
        await section(
            "observability", lambda: observability.measure(dep, sizes.throughput, SENDERS, RECEIVERS)
        )
        if profiler is not None and "throughput" in only:  # the router's profile
            results["profile"] = profiler.summary()
    finally:
        await dep.close()
    results["targets"] = report.targets(results)
    report.write_json(results, json_path)
    try:
        report.write_png(results, json_path.with_suffix(".png"))
    except Exception as exc:
        ok = False
        console.print(f"[red]plot failed:[/] {type(exc).__name__}: {exc}")
    console.print(report.table(results))
    console.print(f"results: {json_path} and {json_path.with_suffix('.png').name}")
    return results, ok


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a few minutes)")
    parser.add_argument("--tiny", action="store_true", help="smallest runs, for CI (under a minute)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        metavar="NAME",
        help=f"run only these sections: {', '.join(SECTIONS)}",
    )
    parser.add_argument("--postgres", action="store_true", help="a temporary PostgreSQL database, not SQLite")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="ping",
        choices=("ping", "sealed"),
        help="py-spy on the router during the one-router throughput run of this kind (ping), and "
        "on the sender and receiver connectors during the pipeline run",
    )
    parser.add_argument("--national-events", type=int, help="events in the national-day run")
    parser.add_argument(
        "--memory-events",
        type=int,
        nargs=2,
        metavar=("N1", "N2"),
        help="memory checkpoints (default 100000 500000)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    args = parser.parse_args()
    console = Console()

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt  # so the vhost, users and database are still removed

    signal.signal(signal.SIGTERM, interrupted)
    try:
        _, ok = asyncio.run(run(args, console))
    except BrokerTooSmall as exc:
        console.print(f"[red]{exc}[/]")
        sys.exit(2)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
