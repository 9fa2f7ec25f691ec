"""Connectors with their workspaces as their own processes (`inbeeld-connector run` and
`serve`), against a test hub: what the browser tests of the workspace start, and stop."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit, urlunsplit

from connectors.keystore import KEK_ENV, Keystore
from connectors.store import LocalStore
from tests.utils.hubs import RunningHub
from tests.utils.keys import forget_keys

PASSWORD = "een lang en geheim wachtwoord"


@dataclass
class Municipality:
    code: str
    folder: Path
    env: dict[str, str]
    url: str = ""
    started: dict[str, Any] = field(default_factory=dict)  # its runtime.started line
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    logs: list[BinaryIO] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.folder / "connector.toml"

    async def cli(self, *args: str, stdin: str = "") -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "connectors.cli",
            *args,
            "-c",
            str(self.config),
            env=self.env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), 90)
        assert proc.returncode is not None
        return proc.returncode, out.decode()

    async def start(self, command: str, *args: str) -> Path:
        log = self.folder / f"{command}.log"
        self.logs.append(log.open("wb"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "connectors.cli",
            command,
            *args,
            "-c",
            str(self.config),
            "--log-format",
            "json",
            env=self.env,
            stdout=self.logs[-1],
            stderr=asyncio.subprocess.STDOUT,
        )
        self.processes.append(proc)
        return log

    async def store(self) -> LocalStore:
        keystore = Keystore.from_env(
            self.folder / "keystore.json", environ={KEK_ENV: self.env[f"WS_KEK_{self.code}"]}
        )
        return await LocalStore.open(self.folder / "connector.db", keystore)


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text("utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


async def wait_for(
    log: Path, event: str, proc: asyncio.subprocess.Process, timeout: float = 60
) -> dict[str, Any]:
    end = asyncio.get_running_loop().time() + timeout
    while True:
        found = [e for e in _events(log) if e.get("event") == event]
        if found:
            return found[0]
        if proc.returncode is not None or asyncio.get_running_loop().time() > end:
            raise AssertionError(f"no {event}: {log.read_text()}")
        await asyncio.sleep(0.1)


def _broker(url: str) -> str:
    parts = urlsplit(url)
    plain = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 5672}", parts.path, "", ""))
    return (
        f'url = "{plain}"\nusername = "{unquote(parts.username or "")}"\n'
        f'password = "{unquote(parts.password or "")}"\nheartbeat = 5\n'
    )


def connector_config(hub: RunningHub, code: str, api_url: str, theme: str = "utrecht") -> str:
    return f"""
tenant = "{code}"
system = "workspace-test"

[broker]
{_broker(hub.tenant_url(code))}
[hub]
url = "{api_url}"
token_env = "WS_TOKEN_{code}"

[keystore]
path = "keystore.json"
kek_env = "WS_KEK_{code}"

[store]
path = "connector.db"

[workspace]
port = 0
secret_env = "WS_SECRET_{code}"
theme = "{theme}"
"""


@contextlib.asynccontextmanager
async def running_connectors(
    hub: RunningHub,
    api_url: str,
    root: Path,
    codes: Sequence[str],
    *,
    serve: Sequence[str] | None = None,
    extra_config: Callable[[str], str] = lambda _code: "",
    env: dict[str, str] | None = None,
    themes: Mapping[str, str] | None = None,
) -> AsyncIterator[dict[str, Municipality]]:
    """Each tenant in `codes` with a fresh keystore (its keys forgotten at the hub, so `run`
    registers its own), a token, `run` started (its `runtime.started` line kept in
    `started`) and, for those in `serve` (default: all), `serve` with its address in `url`,
    wearing the theme `themes` gives the tenant (default: utrecht).
    Every process is stopped on the way out."""
    env = {**os.environ, **(env or {})}
    towns: dict[str, Municipality] = {}
    try:
        for code in codes:
            await forget_keys(hub, code)
            env[f"WS_TOKEN_{code}"] = await hub.token("tenant", code)
            env[f"WS_KEK_{code}"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
            env[f"WS_SECRET_{code}"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
        for code in codes:
            folder = root / code
            folder.mkdir()
            (folder / "connector.toml").write_text(
                connector_config(hub, code, api_url, (themes or {}).get(code, "utrecht")) + extra_config(code)
            )
            town = Municipality(code, folder, env)
            towns[code] = town
            log = await town.start("run")
            town.started = await wait_for(log, "runtime.started", town.processes[-1])
            if serve is None or code in serve:
                log = await town.start("serve")
                serving = await wait_for(log, "workspace.serving", town.processes[-1])
                town.url = serving["url"].rstrip("/")
        yield towns
    finally:
        for town in towns.values():
            for proc in town.processes:
                if proc.returncode is None:
                    proc.terminate()
                    try:
                        await asyncio.wait_for(proc.wait(), 20)
                    except TimeoutError:
                        proc.kill()
                        await proc.wait()
            for handle in town.logs:
                handle.close()


@contextlib.asynccontextmanager
async def workspace_world(
    name: str,
    tmp_session: Path,
    tmp_path_factory: Any,
    codes: Sequence[str],
    *,
    before: Callable[[RunningHub], Awaitable[None]] | None = None,
    **connectors: Any,
) -> AsyncIterator[dict[str, Municipality]]:
    """What a browser test module of the workspace runs against: a hub of its own (vhost and
    SQLite database named after `name`), its API served on a local port, `before(hub)` (e.g.
    a bureau registered), and the connectors of `codes` with their workspaces
    (`running_connectors`, given `connectors`), each having registered its keys."""
    # Imported here: tests.conftest itself imports from tests.utils.
    from hub.api.app import create_app
    from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
    from tests.utils.api import served

    label = f"{name}_{uuid.uuid4().hex[:6]}"
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{label}",
        database_url=await make_database_url("sqlite", label, tmp_session),
    )
    async with (
        private_hub(settings, "sqlite", label) as hub,
        served(create_app(hub.settings, hub.db)) as api_url,
    ):
        if before is not None:
            await before(hub)
        root = tmp_path_factory.mktemp(name)
        async with running_connectors(hub, api_url, root, codes, **connectors) as towns:
            for town in towns.values():
                assert town.started["keys_registered"], town.started
            yield towns
