"""Connector runtimes as separate OS processes (`inbeeld-connector run`), as an operator runs
them: their configuration file, their process, and a free local port for an HTTP source.

Shared by the `pipeline` bench section and the fault suite's harness (tests/faults), so both
start the same connectors the same way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    """This process's environment without any INBEELD_ setting, unbuffered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBEELD_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Proc:
    """One OS process of the deployment; `kill()` is SIGKILL, `start()` starts it again."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        assert self.popen is None or self.popen.poll() is not None, f"{self.name} is running"
        out = self.log.open("ab")
        out.write(f"\n--- start {self.starts + 1} ---\n".encode())
        out.flush()
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def kill(self) -> None:
        assert self.popen is not None and self.alive, f"{self.name} is not running:\n{self.tail()}"
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def connector_toml(
    *,
    tenant: str,
    system: str,
    broker_hosts: str,
    vhost: str,
    username: str,
    password: str,
    inbox: str | None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    http_port: int | None = None,
) -> str:
    """A connector.toml: the tenant's broker account (`broker_hosts` is host:port, or several
    comma-separated for a cluster), a local store, optionally a webhook sink and an HTTP
    source on 127.0.0.1."""
    lines = [
        f'tenant = "{tenant}"',
        f'system = "{system}"',
        "[broker]",
        f'url = "amqp://{broker_hosts}/{quote(vhost, safe="")}"',
        f"username = {json.dumps(username)}",
        f"password = {json.dumps(password)}",
        f"inbox = {json.dumps(inbox)}",
        "heartbeat = 5",
        "prefetch = 64",
        "publish_timeout = 5",
        "[store]",
        'path = "connector.db"',
    ]
    if webhook_url is not None:
        lines += [
            "[[sinks]]",
            'kind = "webhook"',
            'name = "case-system"',
            f'url = "{webhook_url}"',
            f'secret = "{webhook_secret}"',
            "timeout_seconds = 5",
            "initial_backoff_seconds = 0.05",
            "max_backoff_seconds = 0.5",
        ]
    if http_port is not None:
        lines += ["[[sources]]", 'kind = "http"', 'host = "127.0.0.1"', f"port = {http_port}"]
    return "\n".join(lines) + "\n"


def connector_proc(name: str, config: Path, env: dict[str, str] | None = None) -> Proc:
    """`inbeeld-connector run` on `config`, logging JSON at WARNING beside it."""
    return Proc(
        name,
        [
            str(BIN / "inbeeld-connector"),
            "run",
            "--config",
            str(config),
            "--log-format",
            "json",
            "--log-level",
            "WARNING",
        ],
        env if env is not None else base_env(),
        config.parent / "connector.log",
    )
