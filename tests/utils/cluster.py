"""A real RabbitMQ cluster on this machine: three nodes beside the system broker, each with its
own node name, AMQP, distribution and management ports and data directory, joined with
`rabbitmqctl join_cluster`.

Nodes run as the `rabbitmq` user, started with `setpriv` after raising the open-files limit
(started through `su`, as `rabbitmq-server` does for root, a node keeps the PAM soft limit of
1,024 descriptors, too few for hundreds of quorum queues). They share the system node's Erlang
cookie (the `rabbitmq` user's home) and its epmd.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_HOME = "/var/lib/rabbitmq"
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
OPEN_FILES = 20000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> str | None:
    """Why a cluster cannot run here (None: it can)."""
    if os.geteuid() != 0:
        return "starting RabbitMQ nodes as the rabbitmq user needs root"
    for tool in ("rabbitmqctl", "setpriv"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path(SERVER).exists():
        return f"{SERVER} is missing"
    return None


@dataclass
class Node:
    name: str  # e.g. inbeeld-3f2a-1@localhost
    amqp_port: int
    dist_port: int
    mgmt_port: int
    base: Path

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def mgmt_url(self) -> str:
        return f"http://127.0.0.1:{self.mgmt_port}"

    @property
    def pid_file(self) -> Path:
        return self.base / "node.pid"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": RABBITMQ_HOME,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
        }


@dataclass
class RabbitCluster:
    """Start with `await RabbitCluster.start(3)`; `await cluster.remove()` stops and deletes it."""

    nodes: list[Node]
    root: Path
    stopped: set[str] = field(default_factory=set)

    @classmethod
    async def start(cls, size: int = 3) -> RabbitCluster:
        run = uuid.uuid4().hex[:6]
        root = Path(tempfile.mkdtemp(prefix=f"inbeeld-cluster-{run}-"))
        shutil.chown(root, "rabbitmq", "rabbitmq")
        nodes = []
        for i in range(1, size + 1):
            base = root / f"n{i}"
            base.mkdir()
            node = Node(f"inbeeld-{run}-{i}@localhost", _free_port(), _free_port(), _free_port(), base)
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\n"
                f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {node.mgmt_port}\n"
                "loopback_users = none\n"
                # Give a stopped member back its place fast: the tests stop and kill nodes.
                "cluster_partition_handling = pause_minority\n",
                encoding="utf-8",
            )
            (base / "enabled_plugins").write_text("[rabbitmq_management].\n", encoding="utf-8")
            for path in (base, *base.iterdir()):
                shutil.chown(path, "rabbitmq", "rabbitmq")
            nodes.append(node)
        cluster = cls(nodes, root)
        try:
            await asyncio.gather(*(cluster._boot(n) for n in nodes))
            for node in nodes[1:]:
                await cluster.ctl(node, "stop_app")
                await cluster.ctl(node, "reset")
                await cluster.ctl(node, "join_cluster", nodes[0].name)
                await cluster.ctl(node, "start_app")
            await cluster.ctl(nodes[0], "await_online_nodes", str(size))
        except BaseException:
            await cluster.remove()
            raise
        return cluster

    @property
    def amqp_urls(self) -> list[str]:
        return [n.amqp_url for n in self.nodes]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.name not in self.stopped]

    async def ctl(self, node: Node, *args: str, timeout: float = 120) -> str:
        """`rabbitmqctl -n NODE ARGS...`; raises with its output when it fails."""
        proc = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            "-n",
            node.name,
            "--timeout",
            str(int(timeout)),
            *args,
            env={**os.environ, "HOME": RABBITMQ_HOME},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 30)
        text = out.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)} failed: {text[-800:]}")
        return text

    async def _boot(self, node: Node) -> None:
        command = (
            f"ulimit -n {OPEN_FILES} && exec setpriv --reuid rabbitmq --regid rabbitmq --init-groups "
            f"{SERVER} -detached"
        )
        proc = await asyncio.create_subprocess_exec("sh", "-c", command, env=node.env())
        if await proc.wait() != 0:
            raise RuntimeError(f"{node.name} did not start")
        await self.ctl(node, "wait", str(node.pid_file), timeout=90)
        self.stopped.discard(node.name)

    async def stop_node(self, node: Node) -> None:
        """A clean stop (`rabbitmqctl stop`): the node leaves and its queue replicas with it."""
        await self.ctl(node, "stop")
        self.stopped.add(node.name)

    async def kill_node(self, node: Node) -> None:
        """kill -9 the node's Erlang VM: no goodbye to its peers or clients."""
        pid = int(node.pid_file.read_text().strip())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.1)
        self.stopped.add(node.name)

    async def start_node(self, node: Node) -> None:
        """Start a stopped or killed member again; it rejoins the cluster from its data."""
        await self._boot(node)

    async def queue_members(self, vhost: str) -> dict[str, tuple[str, Sequence[str]]]:
        """Quorum queue name -> (leader, members), from a running node's `list_queues`."""
        out = await self.ctl(
            self.running()[0], "list_queues", "-p", vhost, "name", "leader", "members", "--formatter", "json"
        )
        import json

        return {q["name"]: (q["leader"], q["members"]) for q in json.loads(out) if q.get("members")}

    async def remove(self) -> None:
        for node in self.nodes:
            if node.name in self.stopped:
                continue
            try:
                await self.ctl(node, "stop", timeout=60)
            except Exception:
                if node.pid_file.exists():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(node.pid_file.read_text().strip()), signal.SIGKILL)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                await self.ctl(self.nodes[0], "forget_cluster_node", node.name, timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)
