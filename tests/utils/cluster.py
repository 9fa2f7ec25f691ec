"""A three-node RabbitMQ cluster on this machine, of a test module's own.

Each node is a `tests.utils.rabbit_node` node (the `rabbitmq` user, its own node name, AMQP,
distribution and management ports, data and log folder), with the management plugin; nodes 2
and 3 join node 1 (`stop_app` / `join_cluster` / `start_app`). A test can stop a node
gracefully, start it again, or SIGKILL its Erlang VM (that node's `beam.smp` only), and ask
the management API where a queue's leader and members are. Needs root and RabbitMQ's scripts;
`three_node_cluster` skips otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.utils.rabbit_node import Node, free_port, launch, needs_root, node_env, stop_server, wait_listening

USER, PASSWORD = "guest", "guest"  # the default user, allowed on loopback only


@dataclass
class ClusterNode:
    node: Node
    amqp_port: int
    api_port: int
    server: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.poll() is None


@dataclass
class Cluster:
    nodes: list[ClusterNode]
    events: list[str] = field(default_factory=list)  # what was done to the nodes, for messages

    def hosts(self, first: int = 0) -> str:
        """`127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`, starting with node `first` (clients go
        to the first node that answers: a test puts the node it will stop first)."""
        order = self.nodes[first:] + self.nodes[:first]
        return ",".join(f"127.0.0.1:{n.amqp_port}" for n in order)

    def amqp_url(self, user: str = USER, password: str = PASSWORD, vhost: str = "", first: int = 0) -> str:
        """Every node's address in one URL: `amqp://user:pass@h:p1,h:p2,h:p3/vhost`."""
        creds = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"amqp://{creds}@{self.hosts(first)}/{quote(vhost, safe='')}"

    def index(self, node_name: str) -> int:
        return next(i for i, n in enumerate(self.nodes) if n.name == node_name)

    # -- faults -------------------------------------------------------------------------------

    def stop(self, i: int) -> None:
        """Stop node `i` gracefully (`rabbitmqctl stop`: the VM shuts down)."""
        n = self.nodes[i]
        assert n.server is not None
        self.events.append(f"stop {n.name}")
        stop_server(n.node, n.server)

    def kill(self, i: int) -> None:
        """SIGKILL node `i`'s Erlang VM, no other process."""
        n = self.nodes[i]
        assert n.server is not None
        pid = int(n.node.ctl("eval", "os:getpid().").strip().strip('"'))
        assert _descends_from(pid, n.server.pid), f"{pid} is not the VM of {n.name}, which we started"
        self.events.append(f"kill -9 {n.name} ({pid})")
        os.kill(pid, signal.SIGKILL)
        try:
            n.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(n.server.pid, signal.SIGKILL)  # the session we started
            n.server.wait(timeout=10)

    def start(self, i: int) -> None:
        """Start node `i` again (same name and data: it rejoins the cluster) and wait for it."""
        n = self.nodes[i]
        assert not n.running, f"{n.name} is running"
        self.events.append(f"start {n.name}")
        n.server = launch(n.node)
        wait_listening(n.node, n.server)
        n.node.ctl("await_startup", timeout=180)

    def restore(self) -> None:
        """Every node running again (after a scenario)."""
        for i, n in enumerate(self.nodes):
            if not n.running:
                self.start(i)

    # -- the management API ------------------------------------------------------------------

    def api_urls(self) -> list[str]:
        return [n.api_url for n in self.nodes if n.running]

    async def api_get(self, path: str) -> Any:
        """GET `path` from the first running node whose management API answers."""
        last: Exception | None = None
        for base in self.api_urls():
            try:
                async with httpx.AsyncClient(auth=(USER, PASSWORD), timeout=10) as http:
                    r = await http.get(base + path)
                r.raise_for_status()
                return r.json()
            except httpx.HTTPError as exc:
                last = exc
        raise RuntimeError(f"no management API answered {path}: {last!r}")

    async def queue(self, vhost: str, name: str) -> dict[str, Any]:
        """`leader`, `members`, `online`, `messages`, `consumers` ... of a quorum queue."""
        return dict(await self.api_get(f"/api/queues/{quote(vhost, safe='')}/{quote(name, safe='')}"))

    async def leader(self, vhost: str, name: str) -> int:
        """Index of the node that holds `name`'s leader."""
        return self.index(str((await self.queue(vhost, name))["leader"]))

    async def until_members_online(self, vhost: str, name: str, want: int, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while True:
            q = await self.queue(vhost, name)
            if len(q.get("online") or []) >= want and q.get("leader") not in (None, ""):
                return
            if time.monotonic() > end:
                raise TimeoutError(f"{name}: {q.get('online')} online, want {want}")
            await asyncio.sleep(0.5)


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        status = Path(f"/proc/{pid}/status").read_text()
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return False


def _config(amqp_port: int, api_port: int) -> str:
    return (
        f"listeners.tcp.default = 127.0.0.1:{amqp_port}\n"
        f"management.tcp.port = {api_port}\n"
        "management.tcp.ip = 127.0.0.1\n"
        # Faster failure detection than the default 60 s tick: a killed node's peers notice its
        # VM is gone through the closed distribution link anyway; this bounds a hung one.
        "net_ticktime = 15\n"
    )


@contextlib.contextmanager
def three_node_cluster() -> Iterator[Cluster]:
    """Three clustered nodes, ready when yielded; all stopped and their folders removed after."""
    needs_root()
    # Not under pytest's tmp folder: the rabbitmq user must reach its nodes' folders.
    folder = Path(tempfile.mkdtemp(prefix="inbeeld-cluster-"))
    folder.chmod(0o755)
    tag = uuid.uuid4().hex[:6]
    cluster = Cluster([])
    try:
        for k in (1, 2, 3):
            amqp_port, api_port = free_port(), free_port()
            name = f"inbeeld-c{k}-{tag}@localhost"
            sub = folder / f"node{k}"
            env = node_env(
                sub, name, _config(amqp_port, api_port), node_port=amqp_port, plugins=("rabbitmq_management",)
            )
            cluster.nodes.append(ClusterNode(Node(name, sub, env), amqp_port, api_port))
        for n in cluster.nodes:  # booting in parallel is what takes longest
            n.server = launch(n.node)
        for n in cluster.nodes:
            assert n.server is not None
            wait_listening(n.node, n.server)
        first = cluster.nodes[0].name
        for n in cluster.nodes[1:]:
            n.node.ctl("stop_app")
            n.node.ctl("join_cluster", first)
            n.node.ctl("start_app")
        for n in cluster.nodes:
            n.node.ctl("await_startup", timeout=180)
        status = cluster.nodes[0].node.ctl("cluster_status", "--formatter", "json")
        for n in cluster.nodes:
            assert n.name in status, f"{n.name} did not join: {status}"
        yield cluster
    finally:
        for n in reversed(cluster.nodes):
            if n.server is not None and n.server.poll() is None:
                stop_server(n.node, n.server)
        shutil.rmtree(folder, ignore_errors=True)
