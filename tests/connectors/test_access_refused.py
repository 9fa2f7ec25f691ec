"""A connector the broker refuses (a wrong password, a `tenant` whose broker user does not
exist, a vhost it may not use) says so once, as a refusal rather than a network fault, tries
again with growing delays instead of spinning, and stops cleanly on the first SIGTERM or
SIGINT, sent while it is between attempts. `inbeeld-connector run` as its own process."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.utils.connector_cli import clean_env, connector_toml, write_config
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

WATCH = 4.0  # seconds the refused connector is watched after its first word


def _mistake(hub: RunningHub, kind: str) -> dict[str, str]:
    if kind == "password":
        return {"password": "not-the-password"}
    if kind == "tenant":  # a typo in `tenant`, copied into the user name as the example shows
        return {"tenant": "GM0519", "username": f"{hub.settings.vhost}.GM0519"}
    return {"broker_url": "amqp://127.0.0.1:5672/"}  # the default vhost: not ours


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("kind", "sig"),
    [("password", signal.SIGTERM), ("tenant", signal.SIGINT), ("vhost", signal.SIGTERM)],
)
async def test_refused_connector_says_so_once_backs_off_and_stops_on_the_first_signal(
    hub: RunningHub, tmp_path: Path, kind: str, sig: signal.Signals
) -> None:
    config = write_config(tmp_path, connector_toml(hub, "GM0518", **_mistake(hub, kind)))  # type: ignore[arg-type]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        "run",
        "-c",
        str(config),
        "--log-format",
        "json",
        "--log-level",
        "DEBUG",
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []

    async def read() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            lines.append(raw.decode().rstrip("\n"))

    reader = asyncio.create_task(read())
    try:
        deadline = time.monotonic() + 30
        while not any("broker_access_refused" in x for x in lines):
            assert time.monotonic() < deadline and proc.returncode is None, "\n".join(lines)
            await asyncio.sleep(0.05)
        await asyncio.sleep(WATCH)
        assert proc.returncode is None, "a refused connector keeps trying (it may be fixed)"
        sent = time.monotonic()
        proc.send_signal(sig)
        code = await asyncio.wait_for(proc.wait(), 10)
        took = time.monotonic() - sent
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.wait_for(reader, 10)

    text = "\n".join(lines)
    assert code == 0 and took < 3.0, f"exit {code} after {took:.1f}s\n{text}"
    assert "Traceback" not in text
    events = [json.loads(x) for x in lines if x.startswith("{")]
    assert len(events) == len(lines), text  # JSON as asked, nothing else on stderr
    [refused] = [e for e in events if e["event"] == "runtime.broker_access_refused"]
    assert refused["level"] == "error"
    assert "refused user" in refused["error"] and "127.0.0.1:5672" in refused["error"]
    assert not [e for e in events if e["event"] == "runtime.broker_unreachable"], "not a network fault"
    # It kept trying, a handful of times, each wait at least as long as the one before.
    delays = [e["delay"] for e in events if e["event"] == "runtime.broker_retry"]
    assert 2 <= len(delays) <= 8, delays
    assert all(b >= a for a, b in itertools.pairwise(delays)), delays
    assert sum(e["level"] != "debug" for e in events) <= 4, text  # said once, plus start and stop
    assert events[-1]["event"] == "runtime.stopped"
