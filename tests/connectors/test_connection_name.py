"""`inbeeld-connector run` names its broker connection after the tenant and the command, so
the broker's management UI shows whose connector it is: read back from the management API."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from tests.utils.connector_cli import clean_env, connector_toml, write_config
from tests.utils.hubs import RunningHub
from tests.utils.rabbit import connection_names

pytestmark = [pytest.mark.broker, pytest.mark.parametrize("hub", ["sqlite"], indirect=True)]


async def test_the_connector_names_its_connection(hub: RunningHub, tmp_path: Path) -> None:
    config = write_config(tmp_path, connector_toml(hub, "GM0957"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        "run",
        "-c",
        str(config),
        env=clean_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        names = await connection_names(hub.settings, hub.creds["GM0957"].username, want="inbeeld-connector")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert names == ["inbeeld-connector GM0957 run"], err.decode()
    assert proc.returncode == 0, err.decode()
