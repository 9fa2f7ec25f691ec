"""A connector's configuration for a seed tenant of a running hub, and `inbeeld-connector`
run as its own OS process, the way an IT team runs it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hub.api.app import create_app
from tests.utils.api import served
from tests.utils.hubs import RunningHub


def connector_toml(
    hub: RunningHub,
    broker_of: str,
    *,
    tenant: str | None = None,
    username: str | None = None,
    password: str | None = None,
    broker_url: str | None = None,
    inbox: bool = True,
    head: str = "",
    tail: str = "",
) -> str:
    """A minimal configuration using `broker_of`'s broker credentials (each part may be
    overridden to plant a mistake); `head` goes before the first table, `tail` at the end."""
    parts = urlsplit(hub.tenant_url(broker_of))
    url = broker_url or f"{parts.scheme}://{parts.hostname}:{parts.port or 5672}{parts.path}"
    lines = [
        f'tenant = "{tenant or broker_of}"',
        'system = "cli-test"',
        head,
        "[broker]",
        f'url = "{url}"',
        f'username = "{username or unquote(parts.username or "")}"',
        f'password = "{password if password is not None else unquote(parts.password or "")}"',
        "heartbeat = 5",
    ]
    if inbox:
        lines.append(f'inbox = "{hub.inbox(broker_of)}"')
    lines += ["[store]", 'path = "connector.db"', "[[sinks]]", 'kind = "stdout"', tail]
    return "\n".join(lines) + "\n"


def write_config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "connector.toml"
    path.write_text(text, encoding="utf-8")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this machine's INBEELD_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBEELD_")}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", **extra)
    return env


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [x for x in (self.out + self.err).splitlines() if x.strip()]


async def connector_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: bytes | None = None
) -> Outcome:
    """`inbeeld-connector ARGS` as its own process (so the test's hub keeps serving)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        *args,
        env=env or clean_env(),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return Outcome(proc.returncode, out.decode(), err.decode())


@contextlib.asynccontextmanager
async def served_api(hub: RunningHub) -> AsyncIterator[str]:
    """The hub's HTTP API on a free local port, for connectors in other processes."""
    async with served(create_app(hub.settings, hub.db)) as url:
        yield url
