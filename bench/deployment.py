"""A throw-away hub deployment for the benchmarks: its own vhost, database and tenants, and
router processes started as the operator would (`inbeeld router`), in separate OS processes.

Everything here is created by the run and removed at its end: the vhost (with its queues),
the tenants' broker users, the SQLite file's directory or the temporary PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import psutil
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from connectors.keystore import Keystore
from hub import keys, provisioning, registry
from hub.broker import capacity
from hub.broker.management import Management
from hub.broker.topology import ROUTER_QUEUE, declare_inbox, new_inbox_name
from hub.config import Settings
from hub.services import ensure_deployment, management, open_database
from hub.store.db import Database

ADMIN_URL = "amqp://guest:guest@127.0.0.1:5672/"
PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


class BrokerTooSmall(RuntimeError):
    """The broker's file-descriptor limit cannot hold the run's inboxes."""


@dataclass
class Tenant:
    code: str
    kind: str
    url: str  # AMQP URL with the tenant's own broker user
    username: str
    keystore: Keystore | None = None
    inbox: str = ""  # its inbox queue (unguessable name, as `inbeeld tenant provision` makes)


@dataclass
class RouterProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return int(psutil.Process(self.proc.pid).memory_info().rss)


@dataclass
class Deployment:
    settings: Settings
    db: Database
    workdir: Path
    pg_database: str | None = None
    tenants: dict[str, Tenant] = field(default_factory=dict)
    routers: list[RouterProcess] = field(default_factory=list)
    # Environment the next routers start with on top of the deployment's (bench.observability).
    router_extra_env: dict[str, str] = field(default_factory=dict)
    _admin: aio_pika.abc.AbstractConnection | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @classmethod
    async def create(cls, *, postgres: bool = False) -> Deployment:
        vhost = f"bench-{uuid.uuid4().hex[:8]}"
        workdir = Path(tempfile.mkdtemp(prefix="inbeeld-bench-"))
        pg_database = None
        if postgres:
            pg_database = vhost.replace("-", "_")
            await _pg_admin(f'CREATE DATABASE "{pg_database}"')
            db_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_database}"
        else:
            db_url = f"sqlite+aiosqlite:///{workdir / 'hub.db'}"
        # The broker: INBEELD_AMQP_URL and INBEELD_RABBITMQ_API_URL (an admin user), as for
        # the hub itself, so the bench can run on a node with room for 401 inboxes.
        settings = Settings(
            amqp_url=os.environ.get("INBEELD_AMQP_URL", ADMIN_URL),
            database_url=db_url,
            vhost=vhost,
            log_format="json",
            # Inboxes are drained as fast as the router fills them; never let the limit steer it.
            inbox_max_length=1_000_000,
            # The bench measures capacity, not the per-tenant rate policy.
            rate_limit=0,
        )
        db = await open_database(settings)
        async with management(settings) as mgmt:
            await ensure_deployment(settings, mgmt)
        return cls(settings, db, workdir, pg_database)

    async def close(self) -> None:
        self.stop_routers()
        if self._admin is not None:
            await self._admin.close()
        await self.db.close()
        async with management(self.settings) as mgmt:
            await mgmt.delete_vhost(self.settings.vhost)
            users = [u["name"] for u in await mgmt.list_users() if u["name"].startswith(self.vhost + ".")]
            sem = asyncio.Semaphore(8)

            async def drop(name: str) -> None:
                async with sem:
                    await mgmt.delete_user(name)

            await asyncio.gather(*(drop(u) for u in users))
        if self.pg_database is not None:
            await _pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_database}" WITH (FORCE)')
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def vhost(self) -> str:
        return self.settings.vhost

    def mgmt(self) -> Management:
        return management(self.settings)

    async def admin(self) -> aio_pika.abc.AbstractConnection:
        """One connection as the hub's own (admin) user, for bulk inbox reading and prefill."""
        if self._admin is None or self._admin.is_closed:
            self._admin = await aio_pika.connect(self.settings.amqp_url_for())
        return self._admin

    # -- tenants --------------------------------------------------------------------------

    async def provision(self, specs: Sequence[tuple[str, str]], *, with_keys: bool = True) -> None:
        """Register and provision tenants (code, kind) with a progress bar; keystores too."""
        async with self.mgmt() as mgmt:
            for node, room in await capacity.broker_room(mgmt):
                if not room.fits(len(specs)):
                    raise BrokerTooSmall(
                        f"RabbitMQ node {node} cannot hold {len(specs)} more inboxes ({room.describe()}); "
                        "it would stop accepting connections. Raise its open-file limit, or start a second "
                        "local node with a higher one and point the bench at it with INBEELD_AMQP_URL and "
                        "INBEELD_RABBITMQ_API_URL (deploy/README.md, 'File descriptors' and 'A second "
                        "node for the bench'), or run a smaller size (--tiny)."
                    )
        kek = os.urandom(32)
        async with self.db.session() as s, s.begin():
            for code, kind in specs:
                await registry.add_tenant(s, code, f"Bench {code}", kind)
        conn = await self.admin()
        channel = await conn.channel()
        passwords: dict[str, str] = {}
        inboxes = {code: new_inbox_name(code) for code, _ in specs}
        sem = asyncio.Semaphore(8)
        progress = Progress(
            TextColumn("[bold]provisioning tenants"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=False,
        )
        async with self.mgmt() as mgmt:

            async def one(code: str) -> None:
                async with sem:
                    username = provisioning.broker_username(self.vhost, code)
                    password = uuid.uuid4().hex
                    await declare_inbox(
                        channel,
                        inboxes[code],
                        code,
                        self.settings.delivery_limit,
                        self.settings.inbox_max_length,
                    )
                    await mgmt.put_user(username, password)
                    await provisioning.apply_limits(mgmt, self.settings, username)
                    await provisioning.grant(mgmt, self.settings, username, inbox=inboxes[code])
                    passwords[code] = password
                    progress.advance(task)

            with progress:
                task = progress.add_task("provision", total=len(specs))
                await asyncio.gather(*(one(code) for code, _ in specs))
        await channel.close()
        async with self.db.session() as s, s.begin():
            for code, kind in specs:
                username = provisioning.broker_username(self.vhost, code)
                await registry.set_broker_username(s, code, username)
                await registry.set_inbox(s, code, inboxes[code])
                ks = None
                if with_keys:
                    ks = Keystore.create(self.workdir / f"{code}.keystore", kek=kek)
                    await keys.register(s, code, keys.validate_jwks(ks.public_jwks()))
                self.tenants[code] = Tenant(
                    code,
                    kind,
                    self.settings.amqp_url_for(user=username, password=passwords[code]),
                    username,
                    ks,
                    inboxes[code],
                )

    async def add_group(self, name: str, members: Sequence[str]) -> None:
        async with self.db.session() as s, s.begin():
            await registry.add_group(s, name, list(members))

    # -- routers --------------------------------------------------------------------------

    def router_env(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "INBEELD_AMQP_URL": s.amqp_url,
            "INBEELD_DATABASE_URL": s.database_url,
            "INBEELD_VHOST": s.vhost,
            "INBEELD_LOG_FORMAT": "json",
            "INBEELD_LOG_LEVEL": os.environ.get("INBEELD_BENCH_ROUTER_LOG_LEVEL", "INFO"),
            "INBEELD_INBOX_MAX_LENGTH": str(s.inbox_max_length),
            "INBEELD_RATE_LIMIT": str(s.rate_limit),
            **self.router_extra_env,
        }

    async def start_routers(self, n: int) -> list[RouterProcess]:
        """Start `n` `inbeeld router` processes and wait until each consumes the router queue."""
        started = []
        for i in range(n):
            log = self.workdir / f"router-{len(self.routers) + i}.log"
            with log.open("ab") as out:
                proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived child, not awaited
                    [sys.executable, "-c", "from hub.cli import main; main()", "router"],
                    env=self.router_env(),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=Path(__file__).resolve().parents[1],
                    preexec_fn=_die_with_parent,
                )
            started.append(RouterProcess(proc, log))
        self.routers.extend(started)
        await self.wait_consumers(len(self.routers))
        return started

    async def wait_consumers(self, n: int, timeout: float = 60.0) -> None:
        conn = await self.admin()
        channel = await conn.channel()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                declared = await channel.declare_queue(ROUTER_QUEUE, passive=True)
                consumers = declared.declaration_result.consumer_count
                if consumers >= n:
                    return
                for r in self.routers:
                    if r.proc.poll() is not None:
                        tail = r.log.read_text(errors="replace")[-2000:]
                        raise RuntimeError(f"router {r.pid} exited ({r.proc.returncode}):\n{tail}")
                if loop.time() > deadline:
                    raise TimeoutError(f"{consumers} of {n} routers consume after {timeout:.0f} s")
                await asyncio.sleep(0.1)
        finally:
            await channel.close()

    def stop_routers(self) -> None:
        for r in self.routers:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGINT)
        for r in self.routers:
            try:
                r.proc.wait(10)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait()
        self.routers.clear()

    async def router_queue_depth(self) -> int:
        conn = await self.admin()
        channel = await conn.channel()
        try:
            declared = await channel.declare_queue(ROUTER_QUEUE, passive=True)
            return int(declared.declaration_result.message_count)
        finally:
            await channel.close()

    async def purge_inboxes(self, codes: Sequence[str]) -> None:
        conn = await self.admin()
        channel = await conn.channel()
        try:
            for code in codes:
                q = await channel.get_queue(self.tenants[code].inbox, ensure=False)
                await q.purge()
        finally:
            await channel.close()


def broker_pid() -> int | None:
    """The local RabbitMQ node's process (beam.smp), to see what the broker costs."""
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "beam.smp":
            return int(proc.pid)
    return None


class CpuMeter:
    """CPU time of named processes from now: `cores()` is each one's busy cores since then."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.start = time.perf_counter()
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid is not None}
        self.before = {name: self._cpu(p) for name, p in self.procs.items()}

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    def cores(self) -> dict[str, float]:
        span = time.perf_counter() - self.start
        out = {}
        for name, p in self.procs.items():
            try:
                out[name] = round((self._cpu(p) - self.before[name]) / span, 2)
            except psutil.Error:  # it has exited meanwhile
                continue
        return out


def _die_with_parent() -> None:
    """A router must not outlive a bench run that was killed (Linux: PR_SET_PDEATHSIG)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def machine(settings: Settings) -> dict[str, Any]:
    """What the figures were measured on: cores, CPU, memory, RabbitMQ and Python versions."""
    async with management(settings) as mgmt:
        overview = await mgmt.overview()
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "rabbitmq": overview.get("rabbitmq_version"),
        "erlang": overview.get("erlang_version"),
        "database": settings.database_url.split(":", 1)[0],
    }
