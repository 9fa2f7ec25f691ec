"""The fault-injection harness: a fresh deployment whose router and connectors run as
separate OS processes (`inbeeld router`, `inbeeld-connector run`), each reaching its service
through a `TcpProxy` so a test can cut the network; a driver that pushes a stream of ping
events into the sender's local HTTP source; and a count at the receiver's webhook sink.

    driver --POST /events--> sender connector --amqp via proxy--> RabbitMQ
    RabbitMQ --> router process --asyncpg via proxy--> PostgreSQL
    RabbitMQ --amqp via proxy--> receiver connector --webhook--> Webhook (counts by event id)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.connector_processes import BIN, Proc, base_env, connector_proc, connector_toml
from bench.connector_processes import free_port as free_port  # the fault tests import it from here
from tests.utils.hubs import RunningHub
from tests.utils.proxy import TcpProxy
from tests.utils.webhook import Webhook

PING = "nl.leerplicht.ping"
SECRET = "faults-webhook-secret"
SENDER, RECEIVER = "GM0518", "GM0599"


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class FaultDeployment:
    """A fresh hub (own vhost, own PostgreSQL database, five seed tenants) with its router
    as an OS process; `pg_proxy` sits between the router and PostgreSQL."""

    hub: RunningHub
    database: str
    pg_proxy: TcpProxy
    tmp: Path
    router: Proc = field(init=False)

    def __post_init__(self) -> None:
        s = self.hub.settings
        env = base_env() | {
            "INBEELD_AMQP_URL": s.amqp_url,
            "INBEELD_VHOST": s.vhost,
            "INBEELD_RABBITMQ_API_URL": s.rabbitmq_api_url,
            "INBEELD_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_proxy.port}/{self.database}",
            "INBEELD_DELIVERY_LIMIT": str(s.delivery_limit),
            "INBEELD_LOG_FORMAT": "json",
            "INBEELD_LOG_LEVEL": "WARNING",
        }
        self.router = Proc("router", [str(BIN / "inbeeld"), "router"], env, self.tmp / "router.log")

    async def router_ready(self, timeout: float = 30.0) -> None:
        """The router process consumes the router queue (seen from the management API)."""
        from tests.utils.rabbit import consumers

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.router.alive:
                raise AssertionError(f"the router exited:\n{self.router.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if await consumers(self.hub.settings, "inbeeld.router") >= 1:
                    return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"router not consuming after {timeout}s:\n{self.router.tail()}")


class Connector:
    """An `inbeeld-connector run` process for one tenant, its broker traffic through a proxy."""

    def __init__(
        self,
        dep: FaultDeployment,
        code: str,
        folder: Path,
        proxy: TcpProxy | None,
        *,
        webhook: Webhook | None = None,
        http_port: int | None = None,
        broker_hosts: str | None = None,
    ) -> None:
        """`broker_hosts` (host:port,host:port of a cluster's nodes) instead of the proxy."""
        self.code = code
        self.proxy = proxy
        self.http_port = http_port
        creds = dep.hub.creds[code]
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "connector.toml"
        config.write_text(
            connector_toml(
                tenant=code,
                system="faults",
                broker_hosts=broker_hosts or f"127.0.0.1:{proxy.port}",
                vhost=dep.hub.settings.vhost,
                username=creds.username,
                password=creds.password,
                inbox=creds.inbox,
                webhook_url=webhook.url if webhook is not None else None,
                webhook_secret=SECRET,
                http_port=http_port,
            )
        )
        self.proc = connector_proc(f"connector-{code}", config)

    async def ready(self, timeout: float = 30.0) -> None:
        """Started; for a sender, its HTTP source answers."""
        end = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < end:
                if not self.proc.alive:
                    raise AssertionError(f"{self.proc.name} exited:\n{self.proc.tail()}")
                if self.http_port is None:
                    await asyncio.sleep(1.0)  # no endpoint to ask; the inbox consumer follows
                    return
                with contextlib.suppress(httpx.HTTPError):
                    r = await http.get(f"http://127.0.0.1:{self.http_port}/health")
                    if r.status_code == 200 and r.json().get("broker"):
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.proc.name} not ready:\n{self.proc.tail()}")


def amqp_target(hub: RunningHub) -> tuple[str, int]:
    parts = urlsplit(hub.settings.amqp_url)
    return parts.hostname or "127.0.0.1", parts.port or 5672


@dataclass
class Stream:
    """Pushes `n` ping events (ids `<marker>-<i>`) into the sender's HTTP source with a few
    concurrent clients. An event counts as sent once the source answered 202 (published and
    confirmed by the broker); until then the same document, with the same id, is posted again
    (a refused connection, a 503, a timeout or a killed sender are all retried)."""

    url: str
    marker: str
    n: int
    concurrency: int = 8
    rate: float = 0.0  # events per second over all clients, roughly (0: as fast as they go)
    accepted: set[str] = field(default_factory=set)
    attempts: int = 0

    def ids(self) -> list[str]:
        return [f"{self.marker}-{i:05d}" for i in range(self.n)]

    async def run(self) -> None:
        todo: asyncio.Queue[str] = asyncio.Queue()
        for event_id in self.ids():
            todo.put_nowait(event_id)
        async with httpx.AsyncClient(timeout=10) as http:
            await asyncio.gather(*(self._worker(http, todo) for _ in range(self.concurrency)))

    async def _worker(self, http: httpx.AsyncClient, todo: asyncio.Queue[str]) -> None:
        while not todo.empty():
            event_id = todo.get_nowait()
            if self.rate:  # a stream that lasts: a fault that takes seconds happens mid-stream
                await asyncio.sleep(self.concurrency / self.rate)
            doc = {"type": PING, "recipients": [RECEIVER], "data": {"text": event_id}, "id": event_id}
            while True:
                self.attempts += 1
                try:
                    r = await http.post(self.url, json=doc)
                    if r.status_code == 202:
                        assert r.json()["id"] == event_id
                        break
                    assert r.status_code in (502, 503, 504), (r.status_code, r.text)
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            self.accepted.add(event_id)


@dataclass
class Outcome:
    name: str
    sent: int
    delivered: int
    lost: int
    duplicated: int
    seconds: float
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return (
            f"fault {self.name}: sent {self.sent}, delivered {self.delivered}, lost {self.lost}, "
            f"duplicated {self.duplicated}{note}, {self.seconds:.1f}s"
        )


def count(hook: Webhook, marker: str) -> Counter[str]:
    """Accepted POSTs per event id (the `X-Inbeeld-Event-Id` header) for this marker."""
    return Counter(d.event_id for d in hook.accepted() if d.event_id.startswith(marker + "-"))


Fault = Callable[["Scenario"], Awaitable[None]]


@dataclass
class Scenario:
    dep: FaultDeployment
    sender: Connector
    receiver: Connector
    hook: Webhook
    stream: Stream

    def delivered(self) -> int:
        return len(count(self.hook, self.stream.marker))

    async def until_delivered(self, k: int, timeout: float = 120.0) -> None:
        await until(lambda: self.delivered() >= k, timeout, f"{k} deliveries (have {self.delivered()})")

    async def restart(self, proc: Proc, pause: float = 0.5) -> None:
        await asyncio.sleep(pause)
        proc.start()
