"""What one tenant inbox costs the broker: memory and file descriptors per quorum inbox.

    python -m bench.inboxes [--inboxes 100] [--samples 3] [--json PATH]

In a throw-away vhost (removed at the end, also on failure or Ctrl-C) it declares the hub's
core topology, reads the node's `mem_used` and `fd_used` from the management API's
`/api/nodes`, declares N inboxes exactly as `inbeeld tenant provision` does
(`hub.broker.topology.declare_inbox`: a quorum queue with `inbox_args`, bound to the delivery
exchange), reads them again, puts one 1 KiB persistent message in every inbox and reads them a
third time; with `--roll-wal` it then has the write-ahead log written out to the queues'
segment files (as the node does by itself when the log is full) and reads again; last it opens
one connection per inbox consuming it, as each tenant's connector does, and reads once more.
The differences from the first reading divided by N are the per-inbox figures; beside them the
sum of the inboxes' own process memory (`memory` of `/api/queues`), which other activity on the
node does not disturb.

Node figures are refreshed by RabbitMQ every `collect_statistics_interval` (5 s by default),
so each reading is the median of `--samples` readings taken one interval apart. On a node
shared with other work they are noisy: run it more than once and compare.

The broker: INBEELD_AMQP_URL and INBEELD_RABBITMQ_API_URL (an administrator), as for the hub.
It refuses to start when the node's file-descriptor limit has no room for the inboxes
(`hub.broker.capacity`): running out makes the node refuse every new connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from bench.deployment import ADMIN_URL, BrokerTooSmall
from hub.broker import capacity
from hub.broker.management import Management
from hub.broker.topology import declare_core, declare_inbox, inbox_args, new_inbox_name
from hub.config import Settings
from hub.services import management

STATS_INTERVAL_S = 5.5  # RabbitMQ's default collect_statistics_interval, plus a margin
MESSAGE = b"x" * 1024


@dataclass(frozen=True)
class Reading:
    mem_used: int
    fd_used: int


def median_reading(samples: Sequence[Reading]) -> Reading:
    return Reading(
        int(statistics.median(s.mem_used for s in samples)),
        int(statistics.median(s.fd_used for s in samples)),
    )


def per_inbox(before: Reading, after: Reading, n: int) -> dict[str, float]:
    """The difference between two readings, per inbox (memory in KiB)."""
    return {
        "mem_kib": round((after.mem_used - before.mem_used) / n / 1024, 1),
        "fds": round((after.fd_used - before.fd_used) / n, 2),
    }


async def read_node(mgmt: Management, node: str, samples: int) -> Reading:
    readings = []
    for i in range(samples):
        if i:
            await asyncio.sleep(STATS_INTERVAL_S)
        [found] = [n for n in await mgmt.nodes() if n.get("name") == node]
        readings.append(Reading(int(found["mem_used"]), int(found["fd_used"])))
    return median_reading(readings)


async def _settle(seconds: float) -> None:
    # Queue processes and the statistics database catch up before the next reading.
    await asyncio.sleep(seconds)


async def queue_memory(
    mgmt: Management, vhost: str, names: set[str], timeout: float = 30.0
) -> tuple[int, int]:
    """(queues found among `names`, the sum of their processes' memory) from /api/queues, once
    every one reports it (a new queue shows none until its first statistics emission)."""
    end = time.monotonic() + timeout
    while True:
        queues = [q for q in await mgmt.list_queues(vhost) if q["name"] in names]
        if all(q.get("memory") for q in queues) or time.monotonic() > end:
            return len(queues), sum(int(q.get("memory") or 0) for q in queues)
        await asyncio.sleep(1)


def rabbitmqctl() -> str | None:
    return shutil.which("rabbitmqctl") or next(
        (p for p in ("/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl") if os.access(p, os.X_OK)),
        None,
    )


async def roll_over_wal() -> None:
    """Make the node write the quorum queues' write-ahead log out to their segment files, as
    it does by itself once the log reaches its size limit (`raft.wal_max_size_bytes`), so the
    next reading shows whether inboxes that have been in use keep their segment files open."""
    ctl = rabbitmqctl()
    if ctl is None:
        raise RuntimeError("--roll-wal needs rabbitmqctl on this machine (with the node's cookie)")
    proc = await asyncio.create_subprocess_exec(
        ctl,
        "-q",
        "eval",
        "ra_log_wal:force_roll_over(ra_log_wal).",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0 or out.strip() != b"ok":
        raise RuntimeError(f"rabbitmqctl eval force_roll_over: {out.decode()[-300:]}")


async def connect_consumers(
    url: str, names: Sequence[str], timeout: float = 120.0
) -> tuple[list[AbstractRobustConnection], int]:
    """One connection per inbox, consuming it (prefetch 1, acknowledging) as a connector does;
    returns them once every inbox's one message has been consumed (or at `timeout`)."""
    done = asyncio.Event()
    consumed = 0

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal consumed
        await message.ack()
        consumed += 1
        if consumed >= len(names):
            done.set()

    async def one(name: str) -> AbstractRobustConnection:
        conn = await aio_pika.connect_robust(url)
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=1)
        queue = await channel.get_queue(name, ensure=False)
        await queue.consume(on_message)
        return conn

    connections: list[AbstractRobustConnection] = []
    for i in range(0, len(names), 10):
        connections += await asyncio.gather(*(one(name) for name in names[i : i + 10]))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout)
    return connections, consumed


async def measure(
    settings: Settings,
    n: int,
    *,
    samples: int = 3,
    settle_s: float = STATS_INTERVAL_S,
    roll_wal: bool = False,
) -> dict[str, Any]:
    """Declare `n` inboxes in a fresh vhost and report what they cost the node."""
    vhost = f"bench-inboxes-{uuid.uuid4().hex[:8]}"
    scoped = settings.model_copy(update={"vhost": vhost})
    user, _ = settings.api_credentials
    async with management(settings) as mgmt:
        overview = await mgmt.overview()
        node = str(overview["node"])
        rooms = dict(await capacity.broker_room(mgmt))
        if not rooms[node].fits(n):
            raise BrokerTooSmall(
                f"{rooms[node].describe()}: not enough for {n} more; raise the node's limit or ask for fewer"
            )
        await mgmt.create_vhost(vhost, "bench.inboxes (throw-away)")
        try:
            await mgmt.set_permissions(vhost, user, ".*", ".*", ".*")
            conn = await aio_pika.connect(scoped.amqp_url_for())
            try:
                channel = await conn.channel(publisher_confirms=True)
                await declare_core(channel, settings.delivery_limit)
                await _settle(settle_s)
                before = await read_node(mgmt, node, samples)

                names = [new_inbox_name(f"GM{i:04d}") for i in range(1, n + 1)]
                t0 = time.perf_counter()
                for i, name in enumerate(names, start=1):
                    await declare_inbox(
                        channel, name, f"GM{i:04d}", settings.delivery_limit, settings.inbox_max_length
                    )
                declare_s = time.perf_counter() - t0
                await _settle(settle_s)
                declared = await read_node(mgmt, node, samples)
                found, mem_empty = await queue_memory(mgmt, vhost, set(names))

                for name in names:
                    await channel.default_exchange.publish(
                        aio_pika.Message(MESSAGE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=name,
                    )
                await _settle(settle_s)
                filled = await read_node(mgmt, node, samples)
                _, mem_filled = await queue_memory(mgmt, vhost, set(names))
                rolled = None
                if roll_wal:
                    await roll_over_wal()
                    await _settle(settle_s)
                    rolled = await read_node(mgmt, node, samples)
                # Then every tenant's connector: its own connection, consuming its inbox.
                connectors, consumed = await connect_consumers(scoped.amqp_url_for(), names)
                try:
                    await _settle(settle_s)
                    connected = await read_node(mgmt, node, samples)
                finally:
                    await asyncio.gather(*(c.close() for c in connectors))
            finally:
                await conn.close()
        finally:
            await mgmt.delete_vhost(vhost)
        fd_total = int(next(x for x in await mgmt.nodes() if x.get("name") == node)["fd_total"])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "node": node,
        "rabbitmq": overview.get("rabbitmq_version"),
        "cores": os.cpu_count(),
        "inboxes": n,
        "inboxes_found": found,
        "inbox_arguments": inbox_args(settings.delivery_limit, settings.inbox_max_length),
        "declare_per_s": round(n / declare_s, 1),
        "fd_total": fd_total,
        "node_before": before.__dict__,
        "node_declared": declared.__dict__,
        "node_one_message_each": filled.__dict__,
        "per_inbox_empty": per_inbox(before, declared, n),
        "per_inbox_one_message": per_inbox(before, filled, n),
        "per_inbox_after_wal_roll_over": None if rolled is None else per_inbox(before, rolled, n),
        "per_inbox_with_a_consuming_connection": per_inbox(before, connected, n),
        "messages_consumed": consumed,
        "queue_process_kib_per_inbox": {
            "empty": round(mem_empty / n / 1024, 1),
            "one_message": round(mem_filled / n / 1024, 1),
        },
        "vhost": vhost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inboxes", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--inboxes", type=int, default=100, help="inboxes to declare (default 100)")
    parser.add_argument("--samples", type=int, default=3, help="node readings per median (default 3)")
    parser.add_argument(
        "--roll-wal",
        action="store_true",
        help="then flush the write-ahead log to segment files (rabbitmqctl eval) and read again",
    )
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    settings = Settings(
        amqp_url=os.environ.get("INBEELD_AMQP_URL", ADMIN_URL),
        rabbitmq_api_url=os.environ.get("INBEELD_RABBITMQ_API_URL", "http://127.0.0.1:15672"),
    )
    try:
        result = asyncio.run(measure(settings, args.inboxes, samples=args.samples, roll_wal=args.roll_wal))
    except BrokerTooSmall as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
