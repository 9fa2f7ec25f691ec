"""`inbeeld tenant add|provision|remove` as the operator runs them (subprocesses against the
session hub): codes fit their kind, `provision` prints a `[broker]` section a connector
connects with as pasted, and `remove` waits for open transfers and a drained inbox, then
removes the broker user and inbox, keeps the row marked removed and the audit chain intact."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from connectors import Connector
from connectors.config import load_config
from hub.api.app import create_app
from hub.services import amqp_channel, management
from hub.store.models import AuditRecord, Tenant, Transfer, utcnow
from tests.hub.test_operator_audit import chain_intact, cli, records_about
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker
PING = "nl.leerplicht.ping"


async def _cli(hub: RunningHub, *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(cli, hub, *args)
    return done.returncode, done.stdout, done.stderr


async def _waiting(hub: RunningHub, inbox: str) -> int:
    async with amqp_channel(hub.settings) as channel:
        declared = await channel.declare_queue(inbox, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def _provisioned(hub: RunningHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Connector:
    """A new regional bureau, added and provisioned with the CLI; its connector configured
    from the printed [broker] section, pasted as it is, and connected."""
    code = f"rb{uuid.uuid4().hex[:8]}"
    status, out, err = await _cli(hub, "tenant", "add", code, "Regionaal bureau", "--kind", "regional_bureau")
    assert status == 0, err
    status, out, err = await _cli(hub, "tenant", "provision", code)
    assert status == 0, err
    block = out.split("ready to paste:\n", 1)[1].split("set INBEELD_BROKER_PASSWORD", 1)[0]
    assert block.startswith("[broker]\n")
    [password] = re.findall(r"not stored\): (\S+)", out)
    config = tmp_path / "connector.toml"
    config.write_text(f'tenant = "{code}"\n\n{block}\n[store]\npath = "connector.db"\n', "utf-8")
    monkeypatch.setenv("INBEELD_BROKER_PASSWORD", password)
    cfg = load_config(config)
    assert cfg.broker.inbox is not None and cfg.broker.username.endswith(f".{code}")
    connector = Connector(cfg.tenant, cfg.broker.amqp_url(), inbox_name=cfg.broker.inbox, system="pasted")
    await connector.connect()
    return connector


def test_codes_must_fit_their_kind(tmp_path: Path) -> None:
    from tests.test_cli import run

    env = {"INBEELD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'codes.db'}"}
    municipality = run("inbeeld", "tenant", "add", "rotterdam", "Gemeente Rotterdam", env=env)
    assert municipality.returncode == 1
    assert (
        "does not fit kind municipality" in municipality.stderr
        and "GM and four digits" in municipality.stderr
    )
    association = run("inbeeld", "tenant", "add", "GM0001", "Vereniging", "--kind", "association", env=env)
    assert association.returncode == 1 and "does not fit kind association" in association.stderr
    bureau = run("inbeeld", "tenant", "add", "rbl-west", "Bureau West", "--kind", "regional_bureau", env=env)
    assert bureau.returncode == 0, bureau.stderr
    gemeente = run("inbeeld", "tenant", "add", "GM0014", "Gemeente Groningen", env=env)
    assert gemeente.returncode == 0, gemeente.stderr


async def test_the_printed_broker_section_connects_as_pasted(
    hub: RunningHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = await _provisioned(hub, tmp_path, monkeypatch)
    try:
        sent = await (await hub.connector("GM0518")).send(PING, {"text": "welkom"}, [connector.tenant])
        got = []
        async for message in connector.inbox(idle_timeout=10):
            await message.ack()
            got.append(message.event.id)
            if sent.id in got:
                break
        assert sent.id in got
    finally:
        await connector.close()


async def test_remove_waits_for_open_transfers_and_a_drained_inbox(
    hub: RunningHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = await _provisioned(hub, tmp_path, monkeypatch)
    code = connector.tenant
    async with hub.db.session() as s:
        row = await s.get(Tenant, code)
        assert row is not None and row.inbox is not None and row.broker_username is not None
        inbox, user = row.inbox, row.broker_username
    # An open transfer with Den Haag (as the router records an offer: parties and state only)
    transfer_id = f"tr-{uuid.uuid4().hex}"
    now = utcnow()
    async with hub.db.session() as s, s.begin():
        s.add(
            Transfer(
                transfer_id=transfer_id,
                offerer="GM0518",
                receiver=code,
                state="offered",
                offered_at=now,
                deadline_at=now + timedelta(days=14),
                updated_at=now,
            )
        )
    try:
        status, _, err = await _cli(hub, "tenant", "remove", code)
        assert status == 1 and "1 open transfer(s)" in err, err

        async with hub.db.session() as s, s.begin():
            transfer = await s.get(Transfer, transfer_id)
            assert transfer is not None
            transfer.state, transfer.closed_at = "cancelled", utcnow()

        # A message waits in its inbox: refused until the connector has read it
        sent = await (await hub.connector("GM0518")).send(PING, {"text": "nog één"}, [code])
        for _ in range(200):
            if await _waiting(hub, inbox) == 1:
                break
            await asyncio.sleep(0.05)
        status, _, err = await _cli(hub, "tenant", "remove", code)
        assert status == 1 and "still holds 1 message(s)" in err and "--force" in err, err
        async for message in connector.inbox(idle_timeout=5):
            await message.ack()
            if message.event.id == sent.id:
                break
    finally:
        await connector.close()

    status, out, err = await _cli(hub, "tenant", "remove", code)
    assert status == 0, err
    assert f"{code} removed" in out

    async with management(hub.settings) as mgmt:
        assert user not in {u["name"] for u in await mgmt.list_users()}
        assert await mgmt.queue(hub.settings.vhost, inbox) is None
    status, out, _ = await _cli(hub, "tenant", "list")
    [line] = [row for row in out.splitlines() if code in row]
    assert "removed" in line
    [record] = [r for r in await records_about(hub, f"tenant:{code}") if r.activity == "remove tenant"]
    assert isinstance(record, AuditRecord) and record.outcome == "removed" and code in record.recipients
    assert await chain_intact(hub)
    # `inbeeld doctor` does not miss the broker user and inbox removed on purpose
    _, out, _ = await _cli(hub, "doctor", "--no-probe")
    assert "audit chain" in out  # the checks ran
    assert code not in out, out
    # The code is never given again; the removed tenant is not provisioned or reinstated
    status, _, err = await _cli(hub, "tenant", "add", code, "Opnieuw", "--kind", "regional_bureau")
    assert status == 1 and "was removed" in err
    for command in ("provision", "reinstate"):
        status, _, err = await _cli(hub, "tenant", command, code)
        assert status == 1 and "was removed" in err, (command, err)
    # ... nor through the API: a documented 409
    transport = httpx.ASGITransport(app=create_app(hub.settings, hub.db))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
        headers = {"Authorization": f"Bearer {await hub.token('operator')}"}
        response = await api.post(f"/tenants/{code}/reinstate", headers=headers)
        assert response.status_code == 409
        assert response.json()["reason"] == "tenant_removed"
        responses = (await api.get("/openapi.json")).json()["paths"]["/tenants/{code}/reinstate"]["post"]
        assert "409" in responses["responses"]
