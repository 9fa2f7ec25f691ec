"""The walk-through a municipality's IT team makes, as one test: the hub operator adds and
provisions two municipalities with `inbeeld` (no seed) and hands each its `[broker]` section
and an API token; each municipality writes its configuration with `inbeeld-connector init
--tenant`, pastes the section, and `check` refuses what is still wrong (the example values
`init` leaves, another tenant's token, a mistyped tenant) until it is right; then both run
their connectors and go through every flow with the commands: a neighbour notice answered from
the register, a transfer offered, accepted and completed (and a step out of turn refused by the
hub with exit 1 and its reason), a template followed and published to its one subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import signal
import sys
from pathlib import Path
from typing import BinaryIO

import pytest

from connectors.transfers import new_transfer_id
from tests.e2e.test_runtime_flows import DOSSIER, HEADER, ROW, _bundle, of_type, once, until
from tests.hub.test_operator_audit import cli as hub_cli
from tests.utils.connector_cli import clean_env, connector_cli, served_api
from tests.utils.hubs import RunningHub
from tests.utils.webhook import Webhook

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.parametrize("hub", ["sqlite"], indirect=True)]

SECRET = "walkthrough-webhook-secret"
BSN = ROW.split(",", 1)[0]


async def _hub(hub: RunningHub, *args: str) -> str:
    done = await asyncio.to_thread(hub_cli, hub, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _fix(text: str, pattern: str, replacement: str) -> str:
    fixed, n = re.subn(pattern, replacement, text, flags=re.M | re.S)
    assert n, pattern
    return fixed


async def test_from_init_to_every_flow(hub: RunningHub, tmp_path: Path) -> None:
    n = secrets.randbelow(900) + 7000
    a, b = f"GM{n}", f"GM{n + 1}"  # two municipalities of this test only
    group = f"walk-{n}"
    stack = contextlib.AsyncExitStack()
    api_url = await stack.enter_async_context(served_api(hub))
    hooks = {a: Webhook(SECRET.encode()).start(), b: Webhook(SECRET.encode()).start()}
    runs: list[asyncio.subprocess.Process] = []
    log_files: list[BinaryIO] = []
    logs: dict[str, Path] = {}
    try:
        # -- the hub operator -----------------------------------------------------------------
        await _hub(hub, "tenant", "add", a, f"Gemeente Walk {n}")
        await _hub(hub, "tenant", "add", b, f"Gemeente Walk {n + 1}")
        await _hub(hub, "group", "add", group, a, b)
        blocks, env = {}, {}
        for code in (a, b):
            out = await _hub(hub, "tenant", "provision", code)
            blocks[code] = out.split("ready to paste:\n", 1)[1].split("set INBEELD_BROKER_PASSWORD", 1)[0]
            [password] = re.findall(r"not stored\): (\S+)", out)
            [token] = re.findall(r"(inb_\S+)", await _hub(hub, "token", "create", "--tenant", code))
            env[code] = clean_env(
                INBEELD_BROKER_PASSWORD=password,
                INBEELD_HUB_TOKEN=token,
                INBEELD_KEYSTORE_PASSPHRASE=f"the keystore passphrase of {code}",
                INBEELD_WEBHOOK_SECRET=SECRET,
                INBEELD_LOG_FORMAT="json",
            )

        # -- each municipality: init, paste, check until it passes -----------------------------
        configs = {}
        for code in (a, b):
            folder = tmp_path / code
            folder.mkdir()
            config = folder / "connector.toml"
            done = await connector_cli("init", str(config), "--tenant", code, env=env[code])
            assert done.code == 0, done.out + done.err
            text = config.read_text("utf-8")
            text = _fix(text, r"^\[broker\].*?(?=^\[hub\])", blocks[code] + "heartbeat = 5\n\n")
            config.write_text(text, "utf-8")

            # As written by init: the example values are still in it, and check says which.
            done = await connector_cli("check", "-c", str(config), env=env[code])
            assert done.code == 1 and "Traceback" not in done.out + done.err
            fails = [x for x in done.lines if x.startswith("FAIL")]
            for where in ("hub.url", "sinks.0.url", "notices.email"):
                assert any(x.startswith(f"FAIL  {where}: still the example value") for x in fails), fails

            text = _fix(text, r'^url = "https://hub\.example\.nl"', f'url = "{api_url}"')
            text = _fix(
                text, r'^url = "https://zaaksysteem\.intern\.example/inbeeld"', f'url = "{hooks[code].url}"'
            )
            text = text.replace("leerplicht@example.nl", f"leerplicht@{code.lower()}.test")
            text = _fix(text, r"^\[\[sinks\]\]\nkind = \"folder\"\npath = \"received\"\n", "")
            text = _fix(text, r"^initial_backoff_seconds = 5", "initial_backoff_seconds = 0.05")
            config.write_text(text, "utf-8")
            done = await connector_cli("check", "-c", str(config), env=env[code])
            assert done.code == 0, "\n".join(done.lines)
            assert done.lines[-1].endswith("ready to run")
            configs[code] = config

        # Mistakes planted in a good configuration: each its own FAIL line and exit 1.
        other = {**env[a], "INBEELD_HUB_TOKEN": env[b]["INBEELD_HUB_TOKEN"]}
        done = await connector_cli("check", "-c", str(configs[a]), env=other)
        assert done.code == 1 and f"FAIL  hub token: this token is {b}'s, not {a}'s" in done.lines, done.lines
        mistyped = tmp_path / "mistyped.toml"
        mistyped.write_text(configs[a].read_text("utf-8").replace(f'tenant = "{a}"', f'tenant = "{b}"', 1))
        done = await connector_cli("check", "-c", str(mistyped), env=env[a])
        assert done.code == 1 and any(x.startswith("FAIL") and a in x for x in done.lines), done.lines

        # -- both run their connectors -----------------------------------------------------
        (tmp_path / b / "pupils.csv").write_text(HEADER + ROW, encoding="utf-8")
        done = await connector_cli(
            "register", "import", str(tmp_path / b / "pupils.csv"), "-c", str(configs[b]), env=env[b]
        )
        assert done.code == 0, done.out + done.err
        for code in (a, b):
            logs[code] = tmp_path / code / "run.log"
            log_files.append(logs[code].open("wb"))
            runs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "connectors.cli",
                    "run",
                    "-c",
                    str(configs[code]),
                    "--log-format",
                    "json",
                    env=env[code],
                    stdout=log_files[-1],
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=tmp_path / code,
                )
            )

        def started(code: str) -> bool:
            return '"runtime.started"' in logs[code].read_text("utf-8", errors="replace")

        for code in (a, b):
            await until(lambda code=code: started(code), timeout=60, what=f"{code}'s connector")

        async def cmd(code: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
            done = await connector_cli(
                *args, "-c", str(configs[code]), env=env[code], stdin=stdin.encode() if stdin else None
            )
            assert "Traceback" not in done.out + done.err
            return done.code, done.out, done.err

        # A neighbour notice: b knows the pupil from its register and says so.
        code, out, err = await cmd(
            a, "notice", "send", "--group", group, "--phone", "050 367 1234", "--bsn-stdin", stdin=f"{BSN}\n"
        )
        assert code == 0, out + err
        notice_id = out.strip().splitlines()[-1]
        found = of_type("notice.pupil_found", lambda body: body["data"]["notice_id"] == notice_id)
        await until(lambda: hooks[a].accepted_where(found), what="pupil_found at a's case system")

        # A transfer: offered, a step out of turn refused, accepted, completed.
        transfer_id = new_transfer_id(a)
        dossier = tmp_path / "dossier.json"
        dossier.write_text(json.dumps({**DOSSIER, "transfer_id": transfer_id}), "utf-8")
        code, out, err = await cmd(a, "transfer", "offer", "--to", b, "--file", str(dossier))
        assert code == 0 and f"offered transfer {transfer_id} to {b}" in out, out + err
        code, out, err = await cmd(a, "transfer", "complete", transfer_id)
        assert code == 1 and "refused by the hub" in err and "invalid_transition" in err, out + err
        offered = of_type("transfer.offered", lambda body: body["data"]["transfer_id"] == transfer_id)
        await until(lambda: hooks[b].accepted_where(offered), what="the offer at b's case system")
        assert once(hooks[b], offered).body["data"]["pupil"]["bsn"] == DOSSIER["pupil"]["bsn"]
        code, out, err = await cmd(b, "transfer", "accept", transfer_id)
        assert code == 0, out + err
        code, out, err = await cmd(a, "transfer", "complete", transfer_id)
        assert code == 0, out + err
        code, out, err = await cmd(a, "transfer", "show", transfer_id)
        assert code == 0 and "completed" in out, out + err

        # A template: b follows a; a publishes to its one subscriber; it arrives at b.
        code, out, err = await cmd(b, "templates", "follow", a)
        assert code == 0 and f"following {a}" in out, out + err
        template_id = f"walk-{n}"
        bundle = _bundle(tmp_path, template_id, "1.0.0", publisher=a)
        code, out, err = await cmd(a, "templates", "publish", str(bundle))
        assert code == 0 and f"published {template_id}@1.0.0 to 1 subscriber " in out, out + err

        async def listed() -> bool:
            code, out, _ = await cmd(b, "templates", "list")
            return code == 0 and template_id in out

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not await listed():
            assert loop.time() < deadline, "the template did not reach b's catalogue"
            await asyncio.sleep(0.5)
    finally:
        for proc in runs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        for f in log_files:
            f.close()
        for hook in hooks.values():
            hook.stop()
        await stack.aclose()
    for code in (a, b):  # both stopped cleanly on the first SIGTERM
        assert all(p.returncode == 0 for p in runs), [p.returncode for p in runs]
        assert BSN not in logs[code].read_text("utf-8", errors="replace")
