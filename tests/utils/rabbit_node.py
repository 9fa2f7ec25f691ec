"""A second RabbitMQ node on this machine, of a test's own: started as the `rabbitmq` user with
its own data, log and config folder, node name and ports, so the system's node is never
reconfigured; stopped and removed afterwards. Needs root (to become `rabbitmq`) and RabbitMQ's
scripts; `start_node` skips the test otherwise."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 180.0  # a busy machine boots a node slowly


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    folder: Path
    env: dict[str, str]

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """`rabbitmqctl -n NODE ...` as the rabbitmq user (it shares that user's Erlang cookie)."""
        return _as_rabbitmq(["rabbitmqctl", "-n", self.name, *args], self.env, timeout)

    def log_tail(self, lines: int = 30) -> str:
        logs = sorted((self.folder / "log").glob("*.log"))
        text = "\n".join(p.read_text(errors="replace") for p in logs)
        out = (self.folder / "stdout.log").read_text(errors="replace")
        return "\n".join((text + out).splitlines()[-lines:])


def _as_rabbitmq(cmd: list[str], env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        ["setpriv", "--reuid", "rabbitmq", "--regid", "rabbitmq", "--init-groups", *cmd],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}): {(done.stdout + done.stderr)[-800:]}"
        )
    return done.stdout


def node_env(
    folder: Path, name: str, config: str, *, node_port: int, plugins: tuple[str, ...] = ()
) -> dict[str, str]:
    """Prepare `folder` (config, plugins, data and log folders, owned by the rabbitmq user) for
    the node `name` and return the environment that starts it and lets rabbitmqctl reach it."""
    rabbitmq = pwd.getpwnam("rabbitmq")
    for sub in ("data", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "rabbitmq.conf").write_text(config, encoding="utf-8")
    (folder / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n", encoding="utf-8")
    (folder / "rabbitmq-env.conf").write_text("", encoding="utf-8")  # not the system node's
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, rabbitmq.pw_uid, rabbitmq.pw_gid)
    return {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "HOME": rabbitmq.pw_dir,  # its ~/.erlang.cookie lets rabbitmqctl talk to the node
        "LANG": "C.UTF-8",
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_PORT": str(node_port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
        "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
        "RABBITMQ_MNESIA_BASE": str(folder / "data"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        # Erlang distribution (rabbitmqctl's way in) on loopback only, as the system node's.
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }


def needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("rabbitmq-server") is None or shutil.which("setpriv") is None:
        pytest.skip("needs root, setpriv and rabbitmq-server to run a second RabbitMQ node")


def launch(node: Node) -> subprocess.Popen[bytes]:
    """Start `node`'s server as the rabbitmq user (with 20,000 file descriptors: through `su`
    a node gets only 1,024), its output appended to stdout.log."""
    with (node.folder / "stdout.log").open("ab") as stdout:
        return subprocess.Popen(
            [
                "sh",
                "-c",
                "ulimit -n 20000 && exec setpriv --reuid rabbitmq --regid rabbitmq --init-groups "
                "rabbitmq-server",
            ],
            env=node.env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_listening(node: Node, server: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    """Until the node started by `server` has opened its listeners."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"RabbitMQ node {node.name} exited ({server.returncode}):\n{node.log_tail()}")
        try:
            _as_rabbitmq(
                ["rabbitmq-diagnostics", "-q", "-n", node.name, "check_port_connectivity"], node.env, 30
            )
            return
        except (RuntimeError, subprocess.TimeoutExpired):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"RabbitMQ node {node.name} did not open its listeners in {timeout:.0f} s:\n"
                    f"{node.log_tail()}"
                ) from None
            time.sleep(1)


def stop_server(node: Node, server: subprocess.Popen[bytes]) -> None:
    """Stop the node gracefully (`rabbitmqctl stop`); SIGKILL its session if it lingers."""
    with contextlib.suppress(Exception):
        node.ctl("stop", timeout=60)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # the session we started, nothing else
        server.wait(timeout=10)


@contextlib.contextmanager
def start_node(folder: Path, config: str, *, node_port: int) -> Iterator[Node]:
    """A node running `config` (rabbitmq.conf text, whose plain listener is on `node_port`)
    with no plugins, in `folder` (made the rabbitmq user's: put the certificates there
    before). Ready when yielded; stopped and `folder` removed after."""
    needs_root()
    name = f"inbeeld-tls-{uuid.uuid4().hex[:8]}@localhost"
    node = Node(name, folder, node_env(folder, name, config, node_port=node_port))
    server = launch(node)
    try:
        wait_listening(node, server)
        yield node
    finally:
        stop_server(node, server)
        shutil.rmtree(folder, ignore_errors=True)
