"""End to end through connectors, the path the fault suite uses:

    bench --POST /events--> sender connector --> RabbitMQ --> router --> RabbitMQ
          --> receiver connector --webhook--> bench (counts unique event ids)

The sender and receiver are `inbeeld-connector run` processes with an HTTP source and a
webhook sink (configured as the fault suite's harness configures them), the router is an
`inbeeld router` process. The bench posts N ping events (200-character text) to the sender's
HTTP source with a few concurrent clients (one document per POST, then arrays of BATCH), and
times from the first POST to the last webhook
delivery; `lost` is what never reached the webhook, `duplicated` what reached it more than
once. The relay baseline (bench/relay.py) of the same run stands beside it.

Where the time goes
-------------------
Measured 2026-12-01 on the 2-core bench machine (shared), `--quick` (2,000 events), SQLite
hub store, before any change to the connectors (`python -m bench --quick --only pipeline`):

    one document per POST   105 ev/s   (accepted by the sender at 185 ev/s)   relay 1,996 msg/s
    arrays of 100           137 ev/s   (accepted at 457 ev/s)                  (0.05 × and 0.07 ×)
    PostgreSQL hub store, one document per POST: 118 ev/s, relay 2,792 msg/s (0.04 ×)

CPU over the run: receiver connector 0.5–0.8 cores, sender 0.1–0.2, router 0.1–0.2, broker
0.1–0.2: no process is saturated; the path is a chain of waits. `--profile` (py-spy at 100 Hz
on both connectors, all threads, idle included; it slows the run to 58–66 ev/s), shares of
wall time (a share above 100 % means several threads at once):

* Sender, one document per POST: the event loop runs 13 % and waits in epoll 80 %; within
  the 13 %, the request handler 3.8 %, of which publishing 3.4 % and writing the processing
  log record 2.9 %; validation (`prepare`) 0.3 %. SQLite's worker threads execute statements
  111 % of the time while the process uses 0.14 cores: each publish commits its own
  processing-log record on one of the pool's connections, and concurrent requests wait for
  SQLite's write lock (its busy handler sleeps). That commit per event is the sender's limit.
  Arrays of 100 publish concurrently and make it worse per event (SQLite threads 287 %, 0.09
  cores): the batch is accepted 2.5 × faster, but the records still commit one by one.
* Receiver: the event loop runs 35–43 % and waits 44–52 %; SQLite's threads execute 46–55 %.
  Two loops each wait on SQLite in turn: the inbox consumer (per event a duplicate-check
  SELECT, a processing-log commit, the accept commit — event and outbox row — then the ack;
  9–10 % of wall inclusive) and the outbox worker (per item the webhook POST, 7–11 %, then a
  `mark_delivered` commit; 11–17 % inclusive). Sampled during a run, the inbox's backlog grew
  to 1,170 messages while the outbox held about 200 pending: the consumer is the first limit,
  the webhook worker the next.
* Router and broker: 0.05–0.16 cores each, mostly idle: not the limit here.

So the target needs fewer commits per event on both sides: the sender writing a batch's
processing-log records in one transaction; the receiver accepting, storing and acknowledging
several messages in one transaction (multiple-ack) and its outbox worker delivering several
items at once (per-subject order kept) and marking them delivered together.

After the sender's changes (arrays of events, confirms outstanding together, the batch's
processing-log records in one transaction), same machine, same day, `--quick`:

    SQLite hub store       single 110 ev/s (accepted 229)   arrays 111 ev/s (accepted 758)   relay 1,553
    PostgreSQL hub store   single  88 ev/s (accepted 129)   arrays 109 ev/s (accepted 761)   relay 2,893

The sender now accepts arrays 4 × faster than single documents (and 1.7 × faster than before
its processing log was batched), but end to end nothing moved: the receiver is the limit.
Its on-CPU profile (py-spy, 200 Hz, 10 s of the arrays run, no idle): the event loop 47 % of
the samples — the outbox worker 13 % (the webhook POST through httpx 7 %, `due` 3 %,
`mark_delivered` 3 %), the inbox consumer 10 % (`_receive` 6 %: duplicate check 2 %,
processing log 3 %; `accept` 3 %) — and SQLite's worker threads 40 % (statements and the
three commits per event). A lock serialising the store's writes inside the process (instead
of SQLite's busy handler) was tried and changed nothing measurable, so it was left out.

What the receiver needs, and one constraint on it: batching the consumer (several messages
stored in one transaction, then acked with multiple-ack) is safe for the fault suite (a crash
before the commit redelivers messages that were never delivered; after it, the duplicate
check drops the copies). Delivering to the webhook concurrently is not free: a POST the case
system answered 2xx but the store had not yet marked delivered is POSTed again after a
receiver is killed, and the fault suite allows at most one such repeat per kill
(REPEATS_ALLOWED in tests/faults/test_nothing_lost.py); with k POSTs in flight a kill may
repeat up to k (and more if items are marked delivered per batch rather than one by one).
Concurrent delivery therefore needs the issue to decide on that allowance; until then the
worker delivers one item at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.connector_processes import Proc, connector_proc, connector_toml, free_port
from bench.deployment import CpuMeter, Deployment, broker_pid
from bench.payloads import PING, PING_TEXT_MAX
from bench.profile import Profiler
from connectors.sinks import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

SECRET = "bench-pipeline-webhook-secret"
CLIENTS = 8  # concurrent HTTP clients posting to the sender's source
BATCH = 100  # events per POST in the batch run


@dataclass
class WebhookCounter:
    """A minimal HTTP/1.1 (keep-alive) receiver in the bench's event loop standing in for the
    case system: checks each POST's signature, answers 200, counts accepted POSTs per event id
    and remembers when each id first arrived."""

    secret: bytes
    counts: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, float] = field(default_factory=dict)
    unsigned: int = 0
    server: asyncio.Server | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/inbeeld"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                headers: dict[str, str] = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                signed = verify_signature(
                    self.secret,
                    headers.get(TIMESTAMP_HEADER.lower(), ""),
                    body,
                    headers.get(SIGNATURE_HEADER.lower(), ""),
                )
                if signed:
                    event_id = headers.get(EVENT_ID_HEADER.lower(), "")
                    self.counts[event_id] += 1
                    self.first_seen.setdefault(event_id, time.perf_counter())
                    self.changed.set()
                else:
                    self.unsigned += 1
                status = b"200 OK" if signed else b"401 Unauthorized"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    def unique(self, marker: str) -> int:
        return sum(1 for k in self.counts if k.startswith(marker))


async def _ready(proc: Proc, http_port: int | None, timeout: float = 60.0) -> None:
    """The connector runs; a sender's HTTP source answers with the broker connected."""
    end = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < end:
            if not proc.alive:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            if http_port is None:
                await asyncio.sleep(1.0)  # nothing to ask; its inbox consumer follows
                return
            with contextlib.suppress(httpx.HTTPError):
                r = await http.get(f"http://127.0.0.1:{http_port}/health")
                if r.status_code == 200 and r.json().get("broker"):
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{proc.name} not ready after {timeout:.0f} s:\n{proc.tail()}")


def _connector(dep: Deployment, code: str, folder: Path, **kw: Any) -> Proc:
    t = dep.tenants[code]
    parts = urlsplit(dep.settings.amqp_url)
    folder.mkdir(parents=True, exist_ok=True)
    password = urlsplit(t.url).password or ""
    config = folder / "connector.toml"
    config.write_text(
        connector_toml(
            tenant=code,
            system="bench",
            broker_hosts=f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}",
            vhost=dep.vhost,
            username=t.username,
            password=password,
            inbox=t.inbox,
            **kw,
        )
    )
    return connector_proc(f"connector-{code}", config)


async def _post_all(url: str, ids: list[str], recipient: str, batch: int) -> int:
    """Post every id's ping document (`batch` > 1: arrays of that many) with CLIENTS
    concurrent clients, each retried until the source answers 202; returns the attempts."""
    todo: asyncio.Queue[list[str]] = asyncio.Queue()
    for i in range(0, len(ids), batch):
        todo.put_nowait(ids[i : i + batch])
    attempts = 0

    def doc(event_id: str) -> dict[str, Any]:
        text = event_id.ljust(PING_TEXT_MAX, "x")
        return {"type": PING, "recipients": [recipient], "data": {"text": text}, "id": event_id}

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal attempts
        while not todo.empty():
            chunk = todo.get_nowait()
            body: Any = doc(chunk[0]) if batch == 1 else [doc(i) for i in chunk]
            while True:
                attempts += 1
                with contextlib.suppress(httpx.TransportError):
                    r = await http.post(url, json=body)
                    if r.status_code == 202:
                        break
                    if r.status_code not in (502, 503, 504):
                        raise RuntimeError(f"the source answered {r.status_code}: {r.text[:300]}")
                await asyncio.sleep(0.1)

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(worker(http) for _ in range(CLIENTS)))
    return attempts


async def measure(
    dep: Deployment,
    n: int,
    sender: str,
    receiver: str,
    *,
    batch: int = 1,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    """One run of n events; `batch` > 1 posts arrays of that many; `profile_dir` attaches
    py-spy to the sender and the receiver connector processes for the run."""
    marker = f"pl{os.urandom(3).hex()}-{batch}"
    ids = [f"{marker}-{i:06d}" for i in range(n)]
    hook = WebhookCounter(SECRET.encode())
    hook_url = await hook.start()
    http_port = free_port()
    folder = dep.workdir / marker
    recv = _connector(dep, receiver, folder / "receiver", webhook_url=hook_url, webhook_secret=SECRET)
    send = _connector(dep, sender, folder / "sender", http_port=http_port)
    profilers: list[Profiler] = []
    dep.stop_routers()
    try:
        routers = await dep.start_routers(1)
        recv.start()
        send.start()
        await _ready(recv, None)
        await _ready(send, http_port)
        cpu = CpuMeter(
            {
                "broker": broker_pid(),
                "router": routers[0].pid,
                "sender connector": send.pid,
                "receiver connector": recv.pid,
                "bench (clients, webhook)": os.getpid(),
            }
        )
        if profile_dir is not None:
            for name, proc in (("sender", send), ("receiver", recv)):
                mode = "single" if batch == 1 else f"batch{batch}"
                p = Profiler(profile_dir, name=f"pipeline-{mode}-{name}")
                assert proc.pid is not None
                p.attach(proc.pid)
                profilers.append(p)
        start = time.perf_counter()
        attempts = await _post_all(f"http://127.0.0.1:{http_port}/events", ids, receiver, batch)
        accepted_s = time.perf_counter() - start
        # Until every id arrived, or nothing new came for a while.
        quiet, last = 20.0, time.perf_counter()
        seen = hook.unique(marker)
        while seen < n and time.perf_counter() - last < quiet:
            hook.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hook.changed.wait(), 1.0)
            if (now := hook.unique(marker)) != seen:
                seen, last = now, time.perf_counter()
        cores = cpu.cores()
        for p in profilers:
            p.detach()
        await asyncio.sleep(1.0)  # a duplicate delivered just after the last one still counts
        times = [t for k, t in hook.first_seen.items() if k.startswith(marker)]
        elapsed = (max(times) - start) if times else float("nan")
        mine = {k: v for k, v in hook.counts.items() if k.startswith(marker)}
        delivered = len(mine)
    finally:
        for p in profilers:
            p.detach()
        send.stop()
        recv.stop()
        dep.stop_routers()
        await hook.stop()
    out: dict[str, Any] = {
        "event": "ping (200-char text)",
        "events": n,
        "post": "single" if batch == 1 else f"arrays of {batch}",
        "batch": batch,
        "clients": CLIENTS,
        "delivered": delivered,
        "lost": n - delivered,
        "duplicated": sum(v - 1 for v in mine.values()),
        "complete": delivered == n,
        "post_attempts": attempts,
        "accepted_per_s": round(n / accepted_s, 1),
        "seconds": round(elapsed, 2),
        "events_per_s": round(delivered / elapsed, 1) if delivered else 0.0,
        "cpu_cores": cores,  # cores each process kept busy from the first POST to the last delivery
    }
    if profilers:
        out["profile"] = {p.name: p.summary() for p in profilers}
    return out
