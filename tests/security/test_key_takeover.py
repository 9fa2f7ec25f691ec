"""A second connector takes over a tenant's keys (found trying Inbeeld as a new municipality
would): a copy of Rotterdam's connector configuration, `tenant` mistyped, its own keystore,
Rotterdam's broker credentials and API token. Before the fix its start registered new keys,
the directory dropped Rotterdam's, Den Haag's next offer was sealed to the impostor's keys,
Rotterdam's real connector could not open it and nobody heard of it.

Replayed against the running hub on both stores, with real connectors (runtime and CLI) over
the hub's HTTP API: the takeover is refused (409 `key_replacement_refused`, printed by the
connector, audited, the real connector alerted), Rotterdam's keys stay and the next offer
opens at Rotterdam. And when keys do change under a connector, the event it cannot open comes
back to its sender as `delivery.failed`: the transfer is marked, and the sender's runtime and
CLI say so."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pytest
import structlog
from sqlalchemy import select
from typer.testing import CliRunner

from connectors import Connector
from connectors import transfers as sdk
from connectors.cli import app as connector_cli
from connectors.config import ConnectorConfig, load_config
from connectors.directory import Directory
from connectors.hub_api import HubApi
from connectors.keystore import Keystore
from connectors.runtime import Runtime
from connectors.sealing import Sealer
from connectors.sink_files import open_sink_file
from hub.store.models import AuditRecord
from tests.utils.connector_cli import served_api
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys

pytestmark = pytest.mark.broker

PREFIX = "nl.leerplicht."
REJECTED = PREFIX + "hub.rejected"
ALERT = PREFIX + "hub.key_replacement_refused"
FAILED = PREFIX + "delivery.failed"
DOSSIER = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))
BSN = DOSSIER["pupil"]["bsn"]


@pytest.fixture
async def api_url(hub: RunningHub) -> AsyncIterator[str]:
    """The hub's HTTP API on a free port: what connectors and their CLI talk to."""
    async with served_api(hub) as url:
        yield url


def new_keystore(path: Path) -> Keystore:
    return Keystore.create(path, kek=os.urandom(32))


def kids(ks: Keystore) -> set[str]:
    return {k["kid"] for k in ks.public_jwks()["keys"]}


def connector_toml(
    hub: RunningHub,
    *,
    tenant: str,
    broker_of: str,
    api_url: str,
    token: str,
    sink: Path,
    kek_env: str | None = None,
) -> str:
    parts = urlsplit(hub.tenant_url(broker_of))
    url = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 5672}", parts.path, "", ""))
    text = f"""
tenant = "{tenant}"
system = "takeover"

[broker]
url = "{url}"
username = "{unquote(parts.username or "")}"
password = "{unquote(parts.password or "")}"
heartbeat = 5

[hub]
url = "{api_url}"
token = "{token}"

[store]
path = "connector.db"

[[sinks]]
kind = "folder"
path = "{sink}"
"""
    if kek_env is not None:
        text += f'\n[keystore]\npath = "keystore.json"\nkek_env = "{kek_env}"\n'
    return text


def write_config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "connector.toml"
    path.write_text(text, encoding="utf-8")
    return path


class Running:
    """A connector runtime in a task, stopped like SIGTERM would."""

    def __init__(self, config: ConnectorConfig, keystore: Keystore) -> None:
        self.runtime = Runtime(config, keystore=keystore, reconnect_max=1.0)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Runtime:
        self.task = asyncio.create_task(self.runtime.run())
        ready = asyncio.create_task(self.runtime.ready.wait())
        done, _ = await asyncio.wait({self.task, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            ready.cancel()
            self.task.result()
        assert ready in done, "runtime did not start"
        return self.runtime

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def delivered(sink: Path, keystore: Keystore, want: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """What a folder sink holds that matches `want` (its files are encrypted under `keystore`)."""
    found = []
    for path in sink.glob("*.json.enc"):
        body = json.loads(open_sink_file(keystore, path))
        if want(body):
            found.append(body)
    return found


async def until(cond: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def dossier() -> dict[str, Any]:
    return {**DOSSIER, "transfer_id": sdk.new_transfer_id("GM0518")}


async def offer(hub: RunningHub, api_url: str, den_haag: Keystore, to: str, doc: dict[str, Any]) -> Any:
    """Den Haag offers `doc` to `to`, sealed to the keys the directory publishes now."""
    async with HubApi(api_url, await hub.token("tenant", "GM0518")) as api:
        sealer = Sealer(den_haag, Directory(api), "GM0518")
        async with Connector("GM0518", hub.tenant_url("GM0518"), system="takeover", sealer=sealer) as c:
            return await sdk.offer(c, to, doc)


async def connector_check(config: Path, env: dict[str, str]) -> tuple[int, str]:
    """`inbeeld-connector check` as a user runs it (wide, so no table cell wraps)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        "check",
        "-c",
        str(config),
        env={**env, "COLUMNS": "400"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def transfer_status(api_url: str, token: str, transfer_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {token}"}) as http:
        r = await http.get(f"/transfers/{transfer_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_copied_configuration_cannot_take_over_a_tenants_keys(
    hub: RunningHub, api_url: str, tmp_path: Path
) -> None:
    rotterdam = new_keystore(tmp_path / "rotterdam.keystore")
    den_haag = new_keystore(tmp_path / "denhaag.keystore")
    await install_keys(hub, "GM0599", rotterdam.public_jwks())
    await install_keys(hub, "GM0518", den_haag.public_jwks())
    await hub.drain("GM0599")
    token = await hub.token("tenant", "GM0599")

    # The impostor: Rotterdam's configuration copied with a typo in `tenant`, a keystore of its
    # own, Rotterdam's broker credentials and API token, started the documented way.
    impostor = write_config(
        tmp_path / "impostor",
        connector_toml(
            hub,
            tenant="GM0959",
            broker_of="GM0599",
            api_url=api_url,
            token=token,
            sink=tmp_path / "impostor" / "in",
            kek_env="TAKEOVER_KEK",
        ),
    )
    env = {**os.environ, "TAKEOVER_KEK": base64.urlsafe_b64encode(os.urandom(32)).decode()}
    run = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        "run",
        "-c",
        str(impostor),
        "--log-format",
        "json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(run.communicate(), 60)
    assert run.returncode == 1, (out + err).decode()
    lines = err.decode().splitlines()
    refused = "error: the hub refused to replace this tenant's keys (key_replacement_refused)"
    assert lines[-1].startswith(refused)
    assert "rotation proof" in lines[-1]
    logged = [json.loads(x) for x in lines if x.startswith("{")]
    assert [x for x in logged if x["event"] == "runtime.key_replacement_refused" and x["level"] == "error"]

    # `check` says so before: the mistyped tenant, and (typo fixed) the keystore the hub refuses
    code, out = await connector_check(impostor, env)
    assert code == 1 and "the hub knows no tenant GM0959" in out, out
    impostor.write_text(impostor.read_text().replace('tenant = "GM0959"', 'tenant = "GM0599"'))
    code, out = await connector_check(impostor, env)
    assert code == 1 and "the hub publishes other keys for GM0599" in out, out
    assert "key_replacement_refused" in out

    # Rotterdam's keys stay, and the refusal is in the audit chain under Rotterdam
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {token}"}) as http:
        published = (await http.get("/tenants/GM0599/keys")).json()
    assert {k["kid"] for k in published["keys"]} == kids(rotterdam)
    async with hub.db.session() as s:
        outcomes = list(await s.scalars(select(AuditRecord.outcome).where(AuditRecord.sender == "GM0599")))
    assert "refused:key_replacement_refused" in outcomes

    # Rotterdam's real connector hears of it, and still opens Den Haag's next offer
    sink = tmp_path / "rotterdam" / "in"
    config = load_config(
        write_config(
            tmp_path / "rotterdam",
            connector_toml(hub, tenant="GM0599", broker_of="GM0599", api_url=api_url, token=token, sink=sink),
        )
    )
    doc = dossier()
    with structlog.testing.capture_logs() as logs:
        async with Running(config, rotterdam) as runtime:
            assert runtime.keys_registered  # the same keys again: no change, no proof needed
            await until(
                lambda: delivered(sink, rotterdam, lambda b: b["type"] == ALERT), "the alert at Rotterdam"
            )
            sent = await offer(hub, api_url, den_haag, "GM0599", doc)

            def opened() -> list[dict[str, Any]]:
                return delivered(sink, rotterdam, lambda b: b["id"] == sent.id)

            await until(opened, "the offer opened at Rotterdam")
    [body] = opened()
    assert body["data"]["transfer_id"] == doc["transfer_id"] and body["data"]["pupil"]["bsn"] == BSN
    [alert] = delivered(sink, rotterdam, lambda b: b["type"] == ALERT)
    assert alert["data"]["reason"] == "proof_missing"
    assert set(alert["data"]["current_kids"]) == kids(rotterdam)
    assert not set(alert["data"]["presented_kids"]) & kids(rotterdam)
    [logged] = [e for e in logs if e["event"] == "runtime.key_replacement_alert"]
    assert logged["log_level"] == "error" and logged["by_this_connector"] is False
    assert BSN not in repr(logs)
    status = await transfer_status(api_url, await hub.token("tenant", "GM0518"), doc["transfer_id"])
    assert status["state"] == "offered" and status["delivery_failed"] is False


async def test_a_recipient_that_cannot_open_an_offer_tells_its_sender(
    hub: RunningHub, api_url: str, tmp_path: Path
) -> None:
    den_haag = new_keystore(tmp_path / "denhaag.keystore")
    rotterdam_old = new_keystore(tmp_path / "rotterdam-old.keystore")
    await install_keys(hub, "GM0518", den_haag.public_jwks())
    await install_keys(hub, "GM0599", rotterdam_old.public_jwks())
    # Rotterdam's published keys change under its connector (as the takeover did before)
    await install_keys(hub, "GM0599", new_keystore(tmp_path / "elsewhere.keystore").public_jwks())
    for code in ("GM0518", "GM0599", "GM0307"):
        await hub.drain(code)
    dh_token, rd_token = await hub.token("tenant", "GM0518"), await hub.token("tenant", "GM0599")
    sink = tmp_path / "denhaag" / "in"
    dh_config = write_config(
        tmp_path / "denhaag",
        connector_toml(  # [keystore]: the CLI's transfers
            hub,
            tenant="GM0518",
            broker_of="GM0518",
            api_url=api_url,
            token=dh_token,
            sink=sink,
            kek_env="TAKEOVER_UNUSED_KEK",
        ),
    )
    doc = dossier()

    with structlog.testing.capture_logs() as logs:
        async with Running(load_config(dh_config), den_haag) as sender:
            sent = await offer(hub, api_url, den_haag, "GM0599", doc)
            # Rotterdam's connector still holds the old keystore: it cannot open the offer
            async with HubApi(api_url, rd_token) as api:
                sealer = Sealer(rotterdam_old, Directory(api), "GM0599")
                url = hub.tenant_url("GM0599")
                async with Connector(
                    "GM0599", url, inbox_name=hub.inbox("GM0599"), system="takeover", sealer=sealer
                ) as rotterdam:
                    async for message in rotterdam.inbox(idle_timeout=2):
                        assert message.event.id != sent.id
                        await message.ack()
                    assert rotterdam.stats.rejected == 1

            async def replies() -> list[Any]:
                assert sender.store is not None
                return await sender.store.hub_replies(about=sent.id, kind="delivery_failed")

            loop = asyncio.get_running_loop()
            end = loop.time() + 20
            while not await replies():
                assert loop.time() < end, "no delivery.failed at Den Haag"
                await asyncio.sleep(0.05)
            [reply] = await replies()
            assert reply.reason == "crypto_error" and reply.recipient == "GM0599"

            # Nobody else can report on Den Haag's offer, nor send a report elsewhere
            report = {
                "event_id": sent.id,
                "event_source": sent.source,
                "event_type": sent.type,
                "reason": "crypto_error",
            }
            forged = await (await hub.connector("GM0307")).send(FAILED, report, ["GM0518"])
            misdirected = await (await hub.connector("GM0599")).send(FAILED, report, ["GM0307"])
            for code, event in (("GM0307", forged), ("GM0599", misdirected)):
                [rejection] = await hub.receive(
                    code, lambda e, i=event.id: e.type == REJECTED and e.data["event_id"] == i
                )
                assert rejection.data["reason"] == "not_authorised", rejection.data
            assert len(await replies()) == 1

    # What Den Haag's case system got: a reference and a reason code, no content
    [failure] = delivered(sink, den_haag, lambda b: b["type"] == FAILED)
    assert failure["data"] == {
        "event_id": sent.id,
        "event_source": sent.source,
        "event_type": sent.type,
        "reason": "crypto_error",
    }
    assert failure["source"].startswith("urn:nld:cbs:GM0599:")
    assert BSN not in json.dumps(failure) and doc["pupil"]["family_name"] not in json.dumps(failure)
    [logged] = [e for e in logs if e["event"] == "runtime.delivery_failed"]
    assert logged["log_level"] == "error" and logged["about"] == sent.id and logged["recipient"] == "GM0599"
    assert [e for e in logs if e["event"] == "connector.delivery_failed_sent" and e["event_id"] == sent.id]
    assert BSN not in repr(logs)

    # The hub marks the step; both parties see it, and Den Haag's CLI says so
    for token in (dh_token, rd_token):
        status = await transfer_status(api_url, token, doc["transfer_id"])
        assert status["state"] == "offered" and status["delivery_failed"] is True
        assert [(x["step"], x["actor"]) for x in status["timeline"]] == [
            ("offered", "GM0518"),
            ("delivery_failed", "GM0599"),
        ]
    runner = CliRunner()
    shown = await asyncio.to_thread(
        runner.invoke, connector_cli, ["transfer", "show", doc["transfer_id"], "-c", str(dh_config)]
    )
    assert shown.exit_code == 0, shown.output
    assert "(delivery failed)" in shown.output  # the title: state, and that delivery failed
    assert f"delivery failed: GM0599 could not open the latest step of {doc['transfer_id']}" in shown.output
    listed = await asyncio.to_thread(
        runner.invoke, connector_cli, ["transfer", "list", "--role", "offerer", "-c", str(dh_config)]
    )
    assert listed.exit_code == 0 and doc["transfer_id"] in listed.output, listed.output
    assert f"delivery failed: the other party could not open the latest step of {doc['transfer_id']}" in (
        listed.output
    )
