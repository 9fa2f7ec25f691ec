"""`inbeeld` errors that help, through the real command as a user runs it: a database URL
without its async driver names the URL that works; a missing database is not "not
reachable"; every bad setting is listed; broker and management API refusals name where;
`serve` logs its address; one-shot commands log human text unless JSON is asked for."""

from __future__ import annotations

import asyncio
import json
import os
import signal
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


def inbeeld(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INBEELD_")}
    return subprocess.run(
        [str(BIN / "inbeeld"), *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("url", "right"),
    [
        (
            "postgresql://inbeeld:s3cret@127.0.0.1:5432/inbeeld",
            "postgresql+asyncpg://inbeeld:***@127.0.0.1:5432/inbeeld",
        ),
        ("postgres://127.0.0.1/inbeeld", "postgresql+asyncpg://127.0.0.1/inbeeld"),
        ("sqlite:///./inbeeld.db", "sqlite+aiosqlite:///./inbeeld.db"),
    ],
)
def test_a_database_url_without_the_async_driver_names_the_right_one(url: str, right: str) -> None:
    result = inbeeld("tenant", "list", env={"INBEELD_DATABASE_URL": url})
    assert result.returncode == 2
    line = one_line(result)
    assert line == f"error: INBEELD_DATABASE_URL: the hub needs the asynchronous driver: use {right}"
    assert "s3cret" not in line


@pytest.mark.postgres
def test_a_missing_database_is_not_an_unreachable_one(tmp_path: Path) -> None:
    name = f"inbeeld_test_{RUN_ID}_never_made"
    result = inbeeld(
        "tenant", "list", env={"INBEELD_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"}
    )
    assert result.returncode == 2
    line = one_line(result)
    assert f"The database {name} does not exist on the PostgreSQL server at 127.0.0.1:5432" in line
    assert f"createdb -h 127.0.0.1 -p 5432 -O postgres {name}" in line and "not reachable" not in line

    folder = tmp_path / "not-made"
    result = inbeeld("tenant", "list", env={"INBEELD_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/hub.db"})
    assert result.returncode == 2
    assert (
        one_line(result)
        == f"error: The SQLite database {folder}/hub.db cannot be made: its folder {folder} does not exist"
    )


def test_every_bad_setting_is_listed() -> None:
    env = {
        "INBEELD_DATABASE_URL": "mysql://db/inbeeld",
        "INBEELD_API_PORT": "eighty",
        "INBEELD_RATE_LIMIT": "-1",
        "INBEELD_METRICS_TOKEN": "short",
    }
    result = inbeeld("tenant", "list", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    named = sorted(x.split(":", 2)[1].strip() for x in lines)
    assert named == sorted(env), result.stderr
    assert all(x.startswith("error: INBEELD_") for x in lines) and "more" not in result.stderr


@pytest.mark.broker
def test_broker_and_management_refusals_name_where(tmp_path: Path) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    vhost = f"inbeeld-test-{RUN_ID}-refused"
    wrong = {
        "INBEELD_DATABASE_URL": db,
        "INBEELD_VHOST": vhost,
        "INBEELD_AMQP_URL": "amqp://guest:wrong@127.0.0.1:5672/",
    }
    result = inbeeld("router", env=wrong)
    assert result.returncode == 1
    assert one_line(result).startswith("error: the RabbitMQ management API at http://127.0.0.1:15672 refused")
    result = inbeeld("router", env={**wrong, "INBEELD_RABBITMQ_API_PASSWORD": "guest"})
    try:
        assert result.returncode == 1
        assert (
            one_line(result)
            == f"error: RabbitMQ at amqp://guest:***@127.0.0.1:5672/{vhost} refused the credentials"
        )
    finally:
        asyncio.run(remove_deployment(Settings(vhost=vhost)))


@pytest.mark.broker
def test_serve_logs_its_address_and_one_shot_commands_log_human_text(tmp_path: Path) -> None:
    vhost = f"inbeeld-test-{RUN_ID}-serve"
    env = {"INBEELD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", "INBEELD_VHOST": vhost}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INBEELD_")}
    proc = subprocess.Popen(
        [str(BIN / "inbeeld"), "serve", "--port", "0", "--no-router"],
        env={**clean, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        end = time.monotonic() + 60
        listening = None
        while listening is None and time.monotonic() < end:
            line = proc.stderr.readline()
            assert line, "serve ended before it said where it listens"
            if line.startswith("{") and json.loads(line)["event"] == "api.listening":
                listening = json.loads(line)  # not a terminal: a service logs JSON lines
        assert listening is not None
        assert httpx.get(listening["url"] + "/health", timeout=10).status_code < 500
        assert listening["docs"] == listening["url"] + "/docs"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        if proc.stderr is not None:
            proc.stderr.close()
        asyncio.run(remove_deployment(Settings(vhost=vhost)))
    # uvicorn re-raises the signal once it has shut down gracefully (a clean stop to systemd)
    assert code in (0, -signal.SIGTERM)

    # A one-shot command logs human text, even into a pipe; JSON only when asked
    added = inbeeld("tenant", "add", "GM0014", "Gemeente Groningen", env=env)
    assert added.returncode == 0, added.stderr
    [logged] = [x for x in added.stderr.splitlines() if "operator.action" in x]
    assert not logged.startswith("{") and "action='add tenant'" in logged, logged
    again = inbeeld("tenant", "add", "GM0034", "Gemeente Almere", env={**env, "INBEELD_LOG_FORMAT": "json"})
    [logged] = [json.loads(x) for x in again.stderr.splitlines() if "operator.action" in x]
    assert logged["event"] == "operator.action"


@pytest.mark.broker
def test_the_router_stops_cleanly_on_the_first_sigterm(tmp_path: Path) -> None:
    vhost = f"inbeeld-test-{RUN_ID}-router-stop"
    env = {"INBEELD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}", "INBEELD_VHOST": vhost}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INBEELD_")}
    proc = subprocess.Popen(
        [str(BIN / "inbeeld"), "router"],
        env={**clean, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        while not [e for e in seen if e.get("event") == "router.started"]:
            line = proc.stderr.readline()
            assert line, "the router ended before it started"
            seen.append(json.loads(line) if line.startswith("{") else {})
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        took = time.monotonic() - sent
        rest = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        asyncio.run(remove_deployment(Settings(vhost=vhost)))
    assert code == 0 and took < 5, (code, took, rest)
    assert "router.stopped" in rest and "Traceback" not in rest
