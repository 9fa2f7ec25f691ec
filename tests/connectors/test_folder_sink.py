"""The folder sink writes every event encrypted at rest under the keystore's at-rest secret:
`inbeeld-connector sink show FILE` reads one back, and after `inbeeld-connector shred` the
files written before can no longer be decrypted (crypto-shredding reaches them too)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors import Connector
from connectors.cli import app
from connectors.config import load_config
from tests.connectors.test_runtime import PING, Running, broker_section, until
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker
runner = CliRunner()


def _write_config(folder: Path, hub: RunningHub, code: str, kek_env: str) -> Path:
    broker = {**broker_section(hub.tenant_url(code)), "inbox": hub.inbox(code)}
    lines = [f'tenant = "{code}"', 'system = "test-folder-sink"', "[broker]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in broker.items()]
    lines += ["[keystore]", 'path = "keystore.json"', f'kek_env = "{kek_env}"']
    lines += ["[store]", 'path = "connector.db"']
    lines += ["[[sinks]]", 'kind = "folder"', 'name = "files"', 'path = "received"']
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "connector.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_sink_files_are_encrypted_readable_back_and_gone_after_shredding(
    hub: RunningHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = f"sink-{uuid.uuid4().hex[:12]}"
    kek_env = f"TEST_SINK_KEK_{uuid.uuid4().hex[:6].upper()}"
    monkeypatch.setenv(kek_env, base64.urlsafe_b64encode(os.urandom(32)).decode())
    config_path = _write_config(tmp_path / "amersfoort", hub, "GM0307", kek_env)
    received = tmp_path / "amersfoort" / "received"

    sender = Connector("GM0957", hub.tenant_url("GM0957"), inbox_name=hub.inbox("GM0957"), system="sink-test")
    await sender.connect()
    try:
        async with Running(load_config(config_path)):
            event = await sender.send(PING, {"text": marker}, ["GM0307"])
            await until(lambda: any(received.glob("*.json.enc")), what="a folder-sink file")
    finally:
        await sender.close()

    [file] = [p for p in received.iterdir() if not p.name.startswith(".")]
    assert file.name.endswith(".json.enc") and event.id.replace(":", "_") in file.name
    assert marker.encode() not in file.read_bytes()  # nothing of the event in plaintext on disk
    assert oct(file.stat().st_mode & 0o777) == "0o600"

    shown = runner.invoke(app, ["sink", "show", str(file), "--config", str(config_path)])
    assert shown.exit_code == 0, shown.output
    assert f'"text": "{marker}"' in shown.stdout and f'"id": "{event.id}"' in shown.stdout

    # The command runs its own event loop: in a thread, beside this test's.
    shredded = await asyncio.to_thread(runner.invoke, app, ["shred", "--config", str(config_path), "--yes"])
    assert shredded.exit_code == 0, shredded.output

    after = runner.invoke(app, ["sink", "show", str(file), "--config", str(config_path)])
    assert after.exit_code == 1
    assert "cannot be decrypted" in after.output and "shredded" in after.output
    assert marker not in after.output


def test_a_file_that_is_not_a_sink_file_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "connector.toml"
    assert runner.invoke(app, ["init", str(config)]).exit_code == 0
    monkeypatch.setenv("INBEELD_KEYSTORE_KEK", base64.urlsafe_b64encode(os.urandom(32)).decode())
    from connectors.services import open_keystore

    open_keystore(load_config(config))  # creates the keystore, as `run` would
    plain = tmp_path / "event.json"
    plain.write_text('{"type": "nl.leerplicht.ping"}', encoding="utf-8")
    result = runner.invoke(app, ["sink", "show", str(plain), "--config", str(config)])
    assert result.exit_code == 1 and "is not a sink file" in result.output


async def test_a_folder_sink_without_a_keystore_is_a_config_error(hub: RunningHub, tmp_path: Path) -> None:
    config = _write_config(tmp_path, hub, "GM0957", "UNUSED")
    text = config.read_text("utf-8")
    config.write_text(text.replace('[keystore]\npath = "keystore.json"\nkek_env = "UNUSED"\n', ""), "utf-8")
    assert "[keystore]" not in config.read_text("utf-8")
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "connectors.cli", "run", "--config", str(config), stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 2, err
    assert b"sinks.0: a folder sink encrypts its files" in err and b"[keystore]" in err
    assert not (tmp_path / "received").exists()
