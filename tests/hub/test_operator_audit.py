"""Every operator action leaves a trace: register, provision, suspend and reinstate a tenant,
rotate its broker password, create a group, create and revoke tokens, replay a dead letter;
through the API (who: the operator token's id) and through the CLI (who:
`cli` and the OS user), each lands in the audit hash chain, which still verifies, and in one
structured log line that holds no token."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from structlog.testing import capture_logs

from hub import audit, auth, ledger, provisioning
from hub.api.app import create_app
from hub.provisioning import BrokerCredentials
from hub.services import amqp_channel, management
from hub.store.models import ApiToken, AuditRecord, DeadLetter, Group, GroupMember, Tenant
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub.settings, hub.db))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        yield client


@pytest.fixture
async def operator(hub: RunningHub) -> tuple[int, dict[str, str]]:
    async with hub.db.session() as s, s.begin():
        token_id, token = await auth.issue(s, "operator", None, "audit test")
    return token_id, bearer(token)


@pytest.fixture
async def temp_tenant(hub: RunningHub) -> AsyncIterator[BrokerCredentials]:
    """A provisioned tenant of this test alone (suspending a seed tenant would disturb others)."""
    code = f"tmp{uuid.uuid4().hex[:8]}"
    async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
        async with hub.db.session() as s, s.begin():
            await s.merge(Tenant(code=code, name="Tijdelijke gemeente", kind="municipality", active=True))
            await s.flush()
            creds = await provisioning.provision_tenant(s, mgmt, channel, hub.settings, code)
    try:
        yield creds
    finally:
        async with management(hub.settings) as mgmt:
            await mgmt.delete_user(creds.username)
            assert creds.inbox is not None
            await mgmt.delete_queue(hub.settings.vhost, creds.inbox)
        async with hub.db.session() as s, s.begin():
            await s.execute(delete(ApiToken).where(ApiToken.tenant_code == code))
            await s.execute(delete(Tenant).where(Tenant.code == code))


async def records_about(hub: RunningHub, subject_ref: str) -> list[AuditRecord]:
    async with hub.db.session() as s:
        rows = await s.scalars(
            select(AuditRecord).where(AuditRecord.subject_ref == subject_ref).order_by(AuditRecord.seq)
        )
        return list(rows)


async def chain_intact(hub: RunningHub) -> bool:
    async with hub.db.session() as s:
        return (await audit.verify(s)).intact


def actions(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e.get("event") == "operator.action"]


async def test_api_actions_are_audited_with_the_token_and_logged(
    hub: RunningHub,
    api: httpx.AsyncClient,
    operator: tuple[int, dict[str, str]],
    temp_tenant: BrokerCredentials,
) -> None:
    op_id, op = operator
    who = f"operator:token:{op_id}"
    code = temp_tenant.tenant
    with capture_logs() as logs:
        assert (await api.post(f"/tenants/{code}/suspend", headers=op)).status_code == 200
        assert (await api.post(f"/tenants/{code}/reinstate", headers=op)).status_code == 200
        body = {"scope": "tenant", "tenant": code, "label": "x"}
        created = await api.post("/tokens", json=body, headers=op)
        assert created.status_code == 201
        token_id, token = created.json()["id"], created.json()["token"]
        assert (await api.delete(f"/tokens/{token_id}", headers=op)).status_code == 204

    suspended, reinstated = await records_about(hub, f"tenant:{code}")
    assert (suspended.activity, suspended.actor, suspended.outcome) == ("suspend tenant", who, "suspended")
    assert (reinstated.activity, reinstated.actor) == ("reinstate tenant", who)
    assert reinstated.outcome == "reinstated"
    assert suspended.recipients == [code] and suspended.seq < reinstated.seq
    made, revoked = await records_about(hub, f"token:{token_id}")
    assert (made.activity, made.actor, made.outcome) == ("create tenant token", who, "created")
    assert (revoked.activity, revoked.actor, revoked.outcome) == ("revoke tenant token", who, "revoked")
    assert await chain_intact(hub)

    logged = actions(logs)
    assert [(e["action"], e["subject"], e["actor"]) for e in logged] == [
        ("suspend tenant", f"tenant:{code}", who),
        ("reinstate tenant", f"tenant:{code}", who),
        ("create tenant token", f"token:{token_id}", who),
        ("revoke tenant token", f"token:{token_id}", who),
    ]
    assert token not in json.dumps(logs, default=str)  # the plaintext token is never logged

    # The tenant an action was about finds it in its own processing log; the actor is there too.
    async with hub.db.session() as s, s.begin():
        _, mine = await auth.issue(s, "tenant", code)
    theirs = (await api.get("/audit", params={"limit": 1000}, headers=bearer(mine))).json()
    seen = {(r["activity"], r["actor"]) for r in theirs}
    assert {("suspend tenant", who), ("reinstate tenant", who)} <= seen


async def test_registering_a_tenant_and_a_group_through_the_api_is_audited(
    hub: RunningHub, api: httpx.AsyncClient, operator: tuple[int, dict[str, str]]
) -> None:
    op_id, op = operator
    code, group = f"tmp{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    try:
        body = {"code": code, "name": "Nieuwe gemeente", "kind": "regional_bureau"}
        assert (await api.post("/tenants", json=body, headers=op)).status_code == 201
        body = {"name": group, "members": [code, "GM0518"]}
        assert (await api.post("/groups", json=body, headers=op)).status_code == 201
        [added] = await records_about(hub, f"tenant:{code}")
        assert (added.activity, added.actor) == ("add tenant", f"operator:token:{op_id}")
        assert added.recipients == [code]
        [grouped] = await records_about(hub, f"group:{group}")
        assert (grouped.activity, sorted(grouped.recipients)) == ("add group", sorted([code, "GM0518"]))
        assert await chain_intact(hub)
    finally:
        async with hub.db.session() as s, s.begin():
            await s.execute(delete(GroupMember).where(GroupMember.group_name == group))
            await s.execute(delete(Group).where(Group.name == group))
            await s.execute(delete(Tenant).where(Tenant.code == code))


async def test_operator_token_create_and_revoke_through_the_api(
    hub: RunningHub, api: httpx.AsyncClient, operator: tuple[int, dict[str, str]]
) -> None:
    op_id, op = operator
    created = (await api.post("/tokens", json={"scope": "operator"}, headers=op)).json()
    assert (await api.delete(f"/tokens/{created['id']}", headers=op)).status_code == 204
    made, revoked = await records_about(hub, f"token:{created['id']}")
    assert (made.activity, revoked.activity) == ("create operator token", "revoke operator token")
    assert made.actor == revoked.actor == f"operator:token:{op_id}" and made.recipients == []

    again = await api.delete(f"/tokens/{created['id']}", headers=op)
    assert again.status_code == 409 and again.json()["reason"] == "already_revoked"
    assert len(await records_about(hub, f"token:{created['id']}")) == 2  # a refusal changes nothing


async def test_dead_letter_replay_is_audited(
    hub: RunningHub, api: httpx.AsyncClient, operator: tuple[int, dict[str, str]]
) -> None:
    op_id, op = operator
    dl_id = await routed_dead_letter(hub)
    with capture_logs() as logs:
        response = await api.post(f"/dead-letters/{dl_id}/replay", headers=op)
    assert response.status_code == 202 and response.json() == {"status": "replayed"}
    [record] = await records_about(hub, f"dead-letter:{dl_id}")
    assert (record.activity, record.actor, record.outcome) == (
        "replay dead letter",
        f"operator:token:{op_id}",
        "replayed",
    )
    assert [e["subject"] for e in actions(logs)] == [f"dead-letter:{dl_id}"]
    assert await chain_intact(hub)


async def test_a_refused_action_is_not_recorded_as_done(
    hub: RunningHub, api: httpx.AsyncClient, operator: tuple[int, dict[str, str]]
) -> None:
    _, op = operator
    async with hub.db.session() as s:
        before = await s.scalar(select(AuditRecord.seq).order_by(AuditRecord.seq.desc()).limit(1))
    assert (await api.post("/tenants/GM9999/suspend", headers=op)).status_code == 404
    assert (await api.post("/dead-letters/999999/replay", headers=op)).status_code == 404
    assert (await api.delete("/tokens/99999999", headers=op)).status_code == 404
    async with hub.db.session() as s:
        rows = await s.scalars(select(AuditRecord).where(AuditRecord.seq > (before or 0)))
        assert not [r for r in rows if r.actor.startswith("operator:")]


async def routed_dead_letter(hub: RunningHub) -> int:
    """A dead letter holding an event that was already routed: replaying it is harmless (the
    router drops the duplicate), and it does not depend on how the router dead-letters."""
    amersfoort = await hub.connector("GM0307")
    event = await amersfoort.send("nl.leerplicht.ping", {"text": "al bezorgd"}, ["GM0957"])
    await hub.receive("GM0957", lambda e: e.id == event.id)
    async with hub.db.session() as s, s.begin():
        row = DeadLetter(
            reason="delivery_limit", detail="test", sender="GM0307", body=event.to_bytes(), headers={}
        )
        s.add(row)
        await s.flush()
        return row.id


# -- the CLI ---------------------------------------------------------------------------------


def cli(hub: RunningHub, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INBEELD_AMQP_URL": hub.settings.amqp_url,
        "INBEELD_DATABASE_URL": hub.settings.database_url,
        "INBEELD_VHOST": hub.settings.vhost,
        "INBEELD_RABBITMQ_API_URL": hub.settings.rabbitmq_api_url,
        "INBEELD_LOG_LEVEL": "INFO",
        "INBEELD_LOG_FORMAT": "json",
        "INBEELD_DELIVERY_LIMIT": str(hub.settings.delivery_limit),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-c", "from hub.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def logged_actions(stderr: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    return [e for e in lines if e.get("event") == "operator.action"]


async def test_cli_actions_are_audited_with_the_os_user(
    hub: RunningHub, temp_tenant: BrokerCredentials
) -> None:
    who = "operator:cli:" + re.sub(r"[^A-Za-z0-9._@-]", "_", getpass.getuser())[:40]
    code = temp_tenant.tenant

    for command in (("tenant", "suspend", code), ("tenant", "reinstate", code)):
        done = await asyncio.to_thread(cli, hub, *command)
        assert done.returncode == 0, done.stderr
        [line] = logged_actions(done.stderr)
        assert (line["actor"], line["subject"]) == (who, f"tenant:{code}")
    suspended, reinstated = await records_about(hub, f"tenant:{code}")
    assert (suspended.activity, suspended.actor) == ("suspend tenant", who)
    assert (reinstated.activity, reinstated.actor) == ("reinstate tenant", who)

    done = await asyncio.to_thread(cli, hub, "token", "create", "--tenant", code)
    assert done.returncode == 0, done.stderr
    token_id, token = re.search(r"token (\d+) \(shown once, stored hashed\): (\S+)", done.stdout).groups()
    assert token not in done.stderr
    done = await asyncio.to_thread(cli, hub, "token", "revoke", token_id)
    assert done.returncode == 0, done.stderr
    made, revoked = await records_about(hub, f"token:{token_id}")
    assert (made.activity, made.actor, revoked.activity, revoked.actor) == (
        "create tenant token",
        who,
        "revoke tenant token",
        who,
    )

    dl_id = await routed_dead_letter(hub)
    done = await asyncio.to_thread(cli, hub, "dead-letter", "replay", str(dl_id))
    assert done.returncode == 0 and f"dead letter {dl_id} replayed" in done.stdout, done.stderr
    [record] = await records_about(hub, f"dead-letter:{dl_id}")
    assert (record.activity, record.actor) == ("replay dead letter", who)
    assert await chain_intact(hub)


async def test_cli_onboarding_is_audited_and_logs_no_password(hub: RunningHub) -> None:
    who = "operator:cli:" + re.sub(r"[^A-Za-z0-9._@-]", "_", getpass.getuser())[:40]
    code, group = f"tmp{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    passwords = []
    try:
        for command in (
            ("tenant", "add", code, "Nieuw bureau", "--kind", "regional_bureau"),
            ("tenant", "provision", code),
            ("tenant", "rotate-password", code),
            ("group", "add", group, code, "GM0599"),
        ):
            done = await asyncio.to_thread(cli, hub, *command)
            assert done.returncode == 0, done.stderr
            passwords += re.findall(r"not stored\): (\S+)", done.stdout)
            assert [e["actor"] for e in logged_actions(done.stderr)] == [who]
            assert not any(p in done.stderr for p in passwords)
        assert len(passwords) == 2
        records = await records_about(hub, f"tenant:{code}")
        assert [(r.activity, r.actor) for r in records] == [
            ("add tenant", who),
            ("provision tenant", who),
            ("rotate broker password", who),
        ]
        [grouped] = await records_about(hub, f"group:{group}")
        assert (grouped.activity, grouped.actor) == ("add group", who)
        assert await chain_intact(hub)
    finally:
        async with management(hub.settings) as mgmt:
            await mgmt.delete_user(provisioning.broker_username(hub.settings.vhost, code))
            async with hub.db.session() as s:
                inbox = (await s.get(Tenant, code)).inbox  # named at provisioning
            if inbox is not None:
                await mgmt.delete_queue(hub.settings.vhost, inbox)
        async with hub.db.session() as s, s.begin():
            await s.execute(delete(GroupMember).where(GroupMember.group_name == group))
            await s.execute(delete(Group).where(Group.name == group))
            await s.execute(delete(Tenant).where(Tenant.code == code))


async def test_cli_refusals_are_one_line(hub: RunningHub) -> None:
    done = await asyncio.to_thread(cli, hub, "dead-letter", "replay", "999999")
    assert done.returncode == 1 and "no dead letter 999999" in done.stderr and "Traceback" not in done.stderr
    done = await asyncio.to_thread(cli, hub, "dead-letter", "replay", str(2**40))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = await asyncio.to_thread(cli, hub, "token", "revoke", "99999999")
    assert done.returncode == 1 and "no token 99999999" in done.stderr


async def filed_dead_letter(hub: RunningHub, *, kept: bool = True) -> int:
    async with hub.db.session() as s, s.begin():
        row = await ledger.add_dead_letter(
            s,
            reason="delivery_limit",
            detail="a test's dead letter",
            sender="GM0307",
            body=b'{"data": "eyJhbGciOi.x.y"}',
            headers={},
            keep_body=kept,
        )
        return row.id


async def test_a_dead_letter_is_discarded_with_a_reason_and_never_replayed(
    hub: RunningHub, api: httpx.AsyncClient, operator: tuple[int, dict[str, str]]
) -> None:
    op_id, op = operator
    dl_id = await filed_dead_letter(hub)
    async with hub.db.session() as s:
        waiting = await ledger.dead_letters_waiting(s)
    url = f"/dead-letters/{dl_id}/discard"
    tenant = bearer(await hub.token("tenant", "GM0307"))
    assert (await api.post(url, json={"reason": "sent again"}, headers=tenant)).status_code == 403
    bsn = await api.post(url, json={"reason": "pupil 111222333 moved"}, headers=op)
    assert bsn.status_code == 422 and bsn.json()["reason"] == "personal_data_in_envelope"
    assert "111222333" not in bsn.text
    short = await api.post(url, json={"reason": "x"}, headers=op)
    assert short.status_code == 422

    done = await api.post(url, json={"reason": "the sender sent it again"}, headers=op)
    assert done.status_code == 200 and done.json() == {"status": "discarded"}
    [listed] = [d for d in (await api.get("/dead-letters", headers=op)).json() if d["id"] == dl_id]
    assert listed["discard_reason"] == "the sender sent it again" and listed["discarded_at"]
    assert listed["body_kept"] is False and listed["size"] > 0 and listed["sha256"]
    async with hub.db.session() as s:
        assert await ledger.dead_letters_waiting(s) == waiting - 1
    again = await api.post(url, json={"reason": "once more"}, headers=op)
    assert again.status_code == 409 and again.json()["reason"] == "discard_refused"
    replay = await api.post(f"/dead-letters/{dl_id}/replay", headers=op)
    assert replay.status_code == 400 and "discarded" in replay.json()["detail"]
    unknown = await api.post("/dead-letters/999999/discard", json={"reason": "gone"}, headers=op)
    assert unknown.status_code == 404
    [record] = await records_about(hub, f"dead-letter:{dl_id}")
    assert (record.activity, record.actor, record.outcome) == (
        "discard dead letter",
        f"operator:token:{op_id}",
        "discarded",
    )
    assert await chain_intact(hub)


async def test_cli_discards_a_dead_letter_and_refuses_in_one_line(hub: RunningHub) -> None:
    dl_id = await filed_dead_letter(hub)
    done = await asyncio.to_thread(
        cli, hub, "dead-letter", "discard", str(dl_id), "--reason", "cause cannot be fixed"
    )
    assert done.returncode == 0 and f"dead letter {dl_id} discarded" in done.stdout, done.stderr
    [record] = await records_about(hub, f"dead-letter:{dl_id}")
    assert record.activity == "discard dead letter" and record.actor.startswith("operator:cli:")
    again = await asyncio.to_thread(cli, hub, "dead-letter", "discard", str(dl_id), "--reason", "again")
    assert again.returncode == 1 and "discarded already" in again.stderr and "Traceback" not in again.stderr
    bad = await asyncio.to_thread(cli, hub, "dead-letter", "discard", str(dl_id), "--reason", "x")
    assert bad.returncode == 2
