"""API authentication and the operator's levers, through the real app, broker and store:
bearer tokens (missing, wrong, revoked), tenants see only their own records (404, not 403),
suspension cuts broker and API access at once, reinstatement restores both, and a broker
password rotation locks out the old password without touching other tenants.

Suspension and rotation use a temporary tenant, so the session's seed tenants (and their
cached robust connectors, which would keep reconnecting) are never disturbed."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress

import aio_pika
import httpx
import pytest
from aiormq.exceptions import InvalidFrameError, ProbableAuthenticationError
from sqlalchemy import delete

from connectors import Connector
from hub import provisioning
from hub.api.app import create_app
from hub.provisioning import BrokerCredentials
from hub.services import amqp_channel, management
from hub.store.models import ApiToken, Tenant
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

PING = "nl.leerplicht.ping"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub.settings, hub.db))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        yield client


@pytest.fixture
async def operator(hub: RunningHub) -> dict[str, str]:
    return bearer(await hub.token("operator"))


@pytest.fixture
async def temp_tenant(
    hub: RunningHub, api: httpx.AsyncClient, operator: dict[str, str]
) -> AsyncIterator[BrokerCredentials]:
    """A tenant registered through the API and provisioned; removed entirely afterwards."""
    code = f"tmp{uuid.uuid4().hex[:8]}"
    body = {"code": code, "name": "Tijdelijke gemeente", "kind": "regional_bureau"}
    assert (await api.post("/tenants", json=body, headers=operator)).status_code == 201
    async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
        async with hub.db.session() as s, s.begin():
            creds = await provisioning.provision_tenant(s, mgmt, channel, hub.settings, code)
    try:
        yield creds
    finally:
        async with management(hub.settings) as mgmt:
            await mgmt.delete_user(creds.username)
            await mgmt.delete_queue(hub.settings.vhost, creds.inbox or "")
        async with hub.db.session() as s, s.begin():
            await s.execute(delete(ApiToken).where(ApiToken.tenant_code == code))
            await s.execute(delete(Tenant).where(Tenant.code == code))


def url(hub: RunningHub, creds: BrokerCredentials) -> str:
    return hub.settings.amqp_url_for(user=creds.username, password=creds.password)


async def closed_by_broker(conn: aio_pika.abc.AbstractConnection, timeout: float = 5.0) -> bool:
    for _ in range(int(timeout / 0.05)):
        if not conn.connected.is_set():
            return True
        await asyncio.sleep(0.05)
    return False


async def consuming(hub: RunningHub, creds: BrokerCredentials) -> aio_pika.abc.AbstractConnection:
    """A plain (non-reconnecting) connection of the tenant with a consumer on its inbox."""
    conn = await aio_pika.connect(url(hub, creds))
    channel = await conn.channel()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.ack()

    await (await channel.get_queue(creds.inbox or "", ensure=False)).consume(on_message)
    return conn


async def receive_one(connector: Connector, event_id: str, timeout: float = 10.0) -> None:
    async for message in connector.inbox(idle_timeout=timeout):
        await message.ack()
        if message.event.id == event_id:
            return
    raise AssertionError(f"{connector.tenant} did not receive {event_id}")


# -- tokens ----------------------------------------------------------------------------------


async def test_no_token_is_401(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/ledger"),
        ("GET", "/tenants/me"),
        ("GET", "/tenants"),
        ("POST", "/tokens"),
    ]:
        response = await api.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


async def test_wrong_token_is_401(hub: RunningHub, api: httpx.AsyncClient) -> None:
    real = await hub.token("tenant", "GM0518")
    for header in [
        bearer("inb_" + uuid.uuid4().hex),
        bearer(real[:-1] + ("A" if real[-1] != "A" else "B")),
        bearer(real + "x"),
        bearer("not-even-the-prefix"),
        {"Authorization": f"Basic {real}"},
        {"Authorization": real},
    ]:
        assert (await api.get("/tenants/me", headers=header)).status_code == 401, header
    assert (await api.get("/tenants/me", headers=bearer(real))).json()["code"] == "GM0518"


async def test_token_created_by_the_operator_works_until_revoked(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    created = await api.post(
        "/tokens", json={"scope": "tenant", "tenant": "GM0307", "label": "t"}, headers=operator
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("inb_") and body["tenant"] == "GM0307"
    mine = bearer(body["token"])
    assert (await api.get("/tenants/me", headers=mine)).json()["code"] == "GM0307"

    assert (await api.delete(f"/tokens/{body['id']}", headers=operator)).status_code == 204
    assert (await api.get("/tenants/me", headers=mine)).status_code == 401
    assert (await api.get("/ledger", headers=mine)).status_code == 401
    assert (await api.delete("/tokens/99999999", headers=operator)).status_code == 404


async def test_operator_token_via_api_and_bad_token_requests(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    created = await api.post("/tokens", json={"scope": "operator"}, headers=operator)
    assert created.status_code == 201 and created.json()["tenant"] is None
    assert (await api.get("/tenants", headers=bearer(created.json()["token"]))).status_code == 200
    await api.delete(f"/tokens/{created.json()['id']}", headers=operator)

    assert (await api.post("/tokens", json={"scope": "tenant"}, headers=operator)).status_code == 422
    both = {"scope": "operator", "tenant": "GM0518"}
    assert (await api.post("/tokens", json=both, headers=operator)).status_code == 422
    nobody = {"scope": "tenant", "tenant": "GM9999"}
    assert (await api.post("/tokens", json=nobody, headers=operator)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/tenants/GM0599/suspend", None),
        ("POST", "/tenants/GM0518/suspend", None),
        ("POST", "/tenants/GM0599/reinstate", None),
        ("POST", "/tokens", {"scope": "operator"}),
        ("POST", "/tokens", {"scope": "tenant", "tenant": "GM0599"}),
        ("DELETE", "/tokens/1", None),
        ("GET", "/tenants", None),
        ("POST", "/tenants", {"code": "GM0001", "name": "X", "kind": "municipality"}),
        ("GET", "/ledger-counts", None),
    ],
)
async def test_operator_endpoints_refuse_tenant_tokens(
    hub: RunningHub, api: httpx.AsyncClient, operator: dict[str, str], method: str, path: str, body
) -> None:
    tenant = bearer(await hub.token("tenant", "GM0518"))
    response = await api.request(method, path, json=body, headers=tenant)
    assert response.status_code == 403
    # ... and nothing happened
    tenants = {t["code"]: t for t in (await api.get("/tenants", headers=operator)).json()}
    assert tenants["GM0599"]["active"] and tenants["GM0518"]["active"] and "GM0001" not in tenants
    assert (await api.get("/tenants/me", headers=tenant)).status_code == 200


# -- tenants see only their own records ------------------------------------------------------


async def test_another_tenants_ledger_record_is_404(
    hub: RunningHub, api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    sent = await (await hub.connector("GM0518")).send(PING, {"text": "alleen voor Rotterdam"}, ["GM0599"])
    await hub.receive("GM0599", lambda e: e.id == sent.id)
    token = {
        code: bearer(await hub.token("tenant", code)) for code in ("GM0518", "GM0599", "GM0307", "ingrado")
    }

    mine = await api.get(f"/ledger/{sent.id}", headers=token["GM0518"])
    assert mine.status_code == 200 and mine.json()["sender"] == "GM0518"
    received = (await api.get(f"/ledger/{sent.id}", headers=token["GM0599"])).json()
    assert received["recipients"] == ["GM0599"] and received["sequence"] is not None
    assert (await api.get(f"/ledger/{sent.id}", headers=operator)).status_code == 200

    missing_id = str(uuid.uuid4())
    missing = await api.get(f"/ledger/{missing_id}", headers=token["GM0307"])
    for outsider in ("GM0307", "ingrado"):
        theirs = await api.get(f"/ledger/{sent.id}", headers=token[outsider])
        assert theirs.status_code == 404
        # indistinguishable from an event that does not exist: no existence oracle
        assert theirs.json() == {
            **missing.json(),
            "detail": missing.json()["detail"].replace(missing_id, sent.id),
        }
        listed = (await api.get("/ledger", params={"limit": 1000}, headers=token[outsider])).json()
        assert sent.id not in {e["event_id"] for e in listed}
        assert all(e["sender"] == outsider or outsider in e["recipients"] for e in listed)
    for code, direction in (("GM0518", "sent"), ("GM0599", "received")):
        listed = (await api.get("/ledger", params={"direction": direction}, headers=token[code])).json()
        assert sent.id in {e["event_id"] for e in listed}


# -- suspension and reinstatement -------------------------------------------------------------


async def test_suspension_cuts_broker_and_api_access_and_reinstatement_restores_them(
    hub: RunningHub, api: httpx.AsyncClient, operator: dict[str, str], temp_tenant: BrokerCredentials
) -> None:
    code = temp_tenant.tenant
    created = await api.post("/tokens", json={"scope": "tenant", "tenant": code}, headers=operator)
    token = bearer(created.json()["token"])
    assert (await api.get("/tenants/me", headers=token)).status_code == 200
    conn = await consuming(hub, temp_tenant)
    bystander = Connector("GM0599", hub.tenant_url("GM0599"), system="test")
    await bystander.connect()
    try:
        response = await api.post(f"/tenants/{code}/suspend", headers=operator)
        assert response.status_code == 200
        assert response.json() == {"code": code, "active": False, "connections_closed": 1}
        assert await closed_by_broker(conn), "the suspended tenant's connection is still open"
        async with management(hub.settings) as mgmt:
            assert await mgmt.connections_of(temp_tenant.username) == []
            assert await mgmt.get_permissions(hub.settings.vhost, temp_tenant.username) is None
        # The broker answers Connection.Open with Connection.Close (530 NOT_ALLOWED, vhost
        # access refused); aiormq reports that as InvalidFrameError.
        with pytest.raises(InvalidFrameError):
            await aio_pika.connect(url(hub, temp_tenant))
        assert (await api.get("/tenants/me", headers=token)).status_code == 401
        assert (await api.get("/ledger", headers=token)).status_code == 401
        # another tenant carries on, on the connection it already had
        during = await bystander.send(PING, {"text": "still here"}, ["GM0307"])
        await hub.receive("GM0307", lambda e: e.id == during.id)

        response = await api.post(f"/tenants/{code}/reinstate", headers=operator)
        assert response.status_code == 200 and response.json()["active"] is True
        assert (await api.get("/tenants/me", headers=token)).json()["code"] == code
        back_again = Connector(code, url(hub, temp_tenant), inbox_name=temp_tenant.inbox, system="test")
        async with back_again as back:
            sent = await bystander.send(PING, {"text": "welkom terug"}, [code])
            await receive_one(back, sent.id)
            reply = await back.send(PING, {"text": "dank"}, ["GM0599"])
            await hub.receive("GM0599", lambda e: e.id == reply.id)
        async with management(hub.settings) as mgmt:
            perms = await mgmt.get_permissions(hub.settings.vhost, temp_tenant.username)
        wanted = provisioning.permissions_for(inbox=temp_tenant.inbox or "")
        assert {k: perms[k] for k in ("configure", "write", "read")} == wanted
    finally:
        await bystander.close()
        with suppress(Exception):
            await conn.close()


async def test_suspending_an_unknown_tenant_is_404(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    assert (await api.post("/tenants/GM9999/suspend", headers=operator)).status_code == 404
    assert (await api.post("/tenants/GM9999/reinstate", headers=operator)).status_code == 404


# -- password rotation -----------------------------------------------------------------------


async def test_password_rotation_locks_out_the_old_password_only(
    hub: RunningHub, temp_tenant: BrokerCredentials
) -> None:
    code = temp_tenant.tenant
    old_conn = await consuming(hub, temp_tenant)
    other = Connector("GM0518", hub.tenant_url("GM0518"), system="test")
    await other.connect()
    try:
        before = await other.send(PING, {"text": "voor"}, ["GM0599"])
        await hub.receive("GM0599", lambda e: e.id == before.id)

        async with management(hub.settings) as mgmt, hub.db.session() as s, s.begin():
            new, closed = await provisioning.rotate_broker_password(s, mgmt, hub.settings, code)
        assert closed == 1 and new.username == temp_tenant.username and new.password != temp_tenant.password
        assert "password" not in repr(new) and new.password not in repr(new)
        assert await closed_by_broker(old_conn), "a connection with the old password survived rotation"
        with pytest.raises(ProbableAuthenticationError):
            await aio_pika.connect(url(hub, temp_tenant))

        async with Connector(code, url(hub, new), inbox_name=new.inbox, system="test") as fresh:
            sent = await other.send(PING, {"text": "na"}, [code])  # the other tenant's old connection
            await receive_one(fresh, sent.id)
            reply = await fresh.send(PING, {"text": "ontvangen"}, ["GM0599"])
            await hub.receive("GM0599", lambda e: e.id == reply.id)
    finally:
        await other.close()
        with suppress(Exception):
            await old_conn.close()


async def test_rotation_needs_a_provisioned_tenant(hub: RunningHub, api, operator) -> None:
    code = f"tmp{uuid.uuid4().hex[:8]}"
    await api.post(
        "/tenants", json={"code": code, "name": "Nog niet", "kind": "regional_bureau"}, headers=operator
    )
    try:
        async with management(hub.settings) as mgmt, hub.db.session() as s:
            with pytest.raises(provisioning.ProvisioningError):
                await provisioning.rotate_broker_password(s, mgmt, hub.settings, code)
    finally:
        async with hub.db.session() as s, s.begin():
            await s.execute(delete(Tenant).where(Tenant.code == code))


def cli(hub: RunningHub, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INBEELD_AMQP_URL": hub.settings.amqp_url,
        "INBEELD_DATABASE_URL": hub.settings.database_url,
        "INBEELD_VHOST": hub.settings.vhost,
        "INBEELD_RABBITMQ_API_URL": hub.settings.rabbitmq_api_url,
        "INBEELD_LOG_LEVEL": "WARNING",
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


async def test_cli_rotate_password_suspend_and_reinstate(
    hub: RunningHub, temp_tenant: BrokerCredentials
) -> None:
    code = temp_tenant.tenant
    done = await asyncio.to_thread(cli, hub, "tenant", "rotate-password", code)
    assert done.returncode == 0, done.stderr
    password = re.search(r"not stored\): (\S+)", done.stdout).group(1)
    new = BrokerCredentials(code, temp_tenant.username, password, hub.settings.vhost)
    conn = await aio_pika.connect(url(hub, new))
    await conn.close()

    done = await asyncio.to_thread(cli, hub, "tenant", "suspend", code)
    assert done.returncode == 0 and f"{code} suspended" in done.stdout, done.stderr
    with pytest.raises(InvalidFrameError):
        await aio_pika.connect(url(hub, new))
    done = await asyncio.to_thread(cli, hub, "tenant", "reinstate", code)
    assert done.returncode == 0 and f"{code} reinstated" in done.stdout, done.stderr
    conn = await aio_pika.connect(url(hub, new))
    await conn.close()
