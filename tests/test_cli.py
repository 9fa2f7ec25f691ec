"""The two console scripts, run as a user runs them (subprocesses)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hub.config import Settings
from tests.conftest import RUN_ID
from tests.utils.hubs import remove_deployment

BIN = Path(sys.executable).parent


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "INBEELD_LOG_FORMAT": "json", **(env or {})}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("script", ["inbeeld", "inbeeld-connector"])
def test_help(script: str) -> None:
    result = run(script, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout and "Commands" in result.stdout


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"INBEELD_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}, ["RabbitMQ", "127.0.0.1:1"]),
        ({"INBEELD_RABBITMQ_API_URL": "http://127.0.0.1:2"}, ["management API", "127.0.0.1:2"]),
    ],
)
async def test_demo_with_service_down_exits_2_with_one_line(env, names, tmp_path: Path) -> None:
    vhost = f"inbeeld-test-{RUN_ID}-down"
    try:
        result = run("inbeeld", "demo", "--out", str(tmp_path / "out"), "--vhost", vhost, env=env)
    finally:  # the demo may have made its vhost before it found the broker's port closed
        await remove_deployment(Settings(vhost=vhost))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert all(n in lines[0] for n in names) and "Traceback" not in result.stderr
    assert "guest:guest" not in lines[0]  # the password is not printed


def test_database_down_exits_2(tmp_path: Path) -> None:
    result = run(
        "inbeeld",
        "tenant",
        "list",
        env={"INBEELD_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:3/x"},
    )
    assert result.returncode == 2
    assert "database is not reachable at postgresql+asyncpg://postgres@127.0.0.1:3/x" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_tenant_and_group_commands(tmp_path: Path) -> None:
    env = {"INBEELD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"}
    assert run("inbeeld", "seed", env=env).returncode == 0
    added = run("inbeeld", "tenant", "add", "GM0014", "Gemeente Groningen", env=env)
    assert added.returncode == 0, added.stderr
    bad = run("inbeeld", "tenant", "add", "GM0014", "Again", env=env)
    assert bad.returncode == 1 and "already exists" in bad.stderr
    listed = run("inbeeld", "tenant", "list", env=env)
    assert "GM0014" in listed.stdout and "ingrado" in listed.stdout
    assert run("inbeeld", "group", "add", "noord", "GM0014", env=env).returncode == 0
    assert "noord" in run("inbeeld", "group", "list", env=env).stdout
    token = run("inbeeld", "token", "create", "--tenant", "GM0014", env=env)
    assert token.returncode == 0 and "inb_" in token.stdout


@pytest.mark.broker
async def test_demo_plays_the_story(tmp_path: Path) -> None:
    vhost = f"inbeeld-test-{RUN_ID}-demo"
    try:
        result = run("inbeeld", "demo", "--out", str(tmp_path / "demo-out"), "--vhost", vhost, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "hello through the hub" in result.stdout
        assert "demo complete" in result.stdout
        assert (tmp_path / "demo-out" / "demo.json").exists()
        # The console's pages, as the demo's operator saw them: every page of its navigation.
        shots = json.loads((tmp_path / "demo-out" / "demo.json").read_text())["console"]["screenshots"]
        names = [Path(s).stem.split("-", 1)[1] for s in shots]
        assert {"overview", "dead-letters", "tenants", "audit"} <= set(names), shots
        for shot in shots:
            png = (tmp_path / "demo-out" / shot).read_bytes()
            assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000, shot
        # Both officers' workspaces, each in the theme of its [workspace] configuration.
        workspaces = json.loads((tmp_path / "demo-out" / "demo.json").read_text())["workspace"]
        headings = {
            "werkbak": "Werkbak",
            "register": "Leerlingenregister",
            "dossier": "Dossier van overdracht",
        }
        for code, theme, names in (
            ("GM0518", "denhaag", ["werkbak", "register"]),
            ("GM0599", "utrecht", ["werkbak", "register", "dossier"]),
        ):
            assert workspaces[code]["theme"] == theme
            shown = workspaces[code]["pages"]
            assert [Path(s["file"]).stem.split("-", 1)[1] for s in shown] == names, shown
            for shot in shown:
                assert Path(shot["file"]).parent == Path("workspace") / code
                assert shot["heading"].startswith(headings[Path(shot["file"]).stem.split("-", 1)[1]]), shot
                assert f"{theme}-theme" in shot["classes"], shot
                png = (tmp_path / "demo-out" / shot["file"]).read_bytes()
                assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000, shot
                width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk: a whole page
                assert width == 1280 and height >= 600, (shot, width, height)
        assert workspaces["GM0599"]["pages"][2]["heading"].endswith(
            json.loads((tmp_path / "demo-out" / "demo.json").read_text())["transfer"]["transfer_id"]
        )
    finally:
        await remove_deployment(Settings(vhost=vhost))


@pytest.mark.broker
@pytest.mark.browser
def test_demo_serve_keeps_the_console_running_until_interrupted(tmp_path: Path) -> None:
    vhost = f"inbeeld-test-{RUN_ID}-demo-serve"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["demo", "--out", str(tmp_path / "out"), "--vhost", vhost, "--serve", "--port", str(port)]
    proc = subprocess.Popen(
        [str(BIN / "inbeeld"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "INBEELD_LOG_FORMAT": "json", "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "console at" in line:
                break
        found = re.search(r"console at (\S+) .*log in as (\S+) with password (\S+)", " ".join(lines))
        assert found, "".join(lines)
        url, login, password = found.groups()
        assert url == f"http://127.0.0.1:{port}/console"
        with httpx.Client(base_url=url) as client:
            page = client.get("/login")
            assert page.status_code == 200
            field = re.search(r'<input type="hidden" name="([^"]+)" value="([^"]+)"', page.text)
            assert field
            done = client.post(
                "/login",
                data={field[1]: field[2], "name": login, "password": password},
                follow_redirects=True,
            )
            assert done.status_code == 200 and "GM0518" in client.get("/tenants").text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) in (0, 130)  # it stops the hub, routers and connectors
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        asyncio.run(remove_deployment(Settings(vhost=vhost)))
