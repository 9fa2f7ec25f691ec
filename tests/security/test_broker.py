"""Attacks and accidents at the broker, against a running hub on both stores:

- a tenant opening connections or channels without end (RabbitMQ user limits, set at
  provisioning and reported by `inbeeld doctor`);
- a second connector instance consuming the same inbox (one active consumer per inbox: the
  second stands by, and says so);
- inboxes created before they had unguessable names, moved by `inbeeld migrate` without
  losing a message.
(The passive-declare probe itself is in tests/hub/test_isolation.py, beside the other
isolation attacks.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import aio_pika
import httpx
import pytest
import uvicorn
from aiormq.exceptions import (
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    ConnectionNotAllowed,
    InvalidFrameError,
)
from sqlalchemy import delete
from structlog.testing import capture_logs
from typer.testing import CliRunner

from connectors import Connector, InboxUnavailable
from connectors.cli import app as connector_cli
from connectors.config import parse_config
from connectors.runtime import Runtime
from hub import doctor, provisioning, registry
from hub.api.app import create_app
from hub.broker.topology import DELIVERY, _quorum_args, legacy_inbox_name
from hub.config import Settings
from hub.inboxes import InboxMoveError, migrate_all
from hub.provisioning import BrokerCredentials
from hub.services import amqp_channel, management
from hub.store.models import ApiToken, Tenant
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

PING = "nl.leerplicht.ping"


def tenant_url(hub: RunningHub, creds: BrokerCredentials) -> str:
    return hub.settings.amqp_url_for(user=creds.username, password=creds.password)


@asynccontextmanager
async def temp_tenant(hub: RunningHub, settings: Settings | None = None) -> AsyncIterator[BrokerCredentials]:
    """A municipality registered and provisioned with `settings` (default: the hub's); its
    user, inbox and rows are removed afterwards."""
    settings = settings or hub.settings
    code = f"tmp{uuid.uuid4().hex[:8]}"
    async with hub.db.session() as s, s.begin():
        await registry.add_tenant(s, code, "Tijdelijke gemeente", "regional_bureau")  # a slug code
    creds = None
    try:
        async with management(settings) as mgmt, amqp_channel(settings) as channel:
            async with hub.db.session() as s, s.begin():
                creds = await provisioning.provision_tenant(s, mgmt, channel, settings, code)
        yield creds
    finally:
        await _remove(hub, code, creds.inbox if creds else None)


async def _remove(hub: RunningHub, code: str, inbox: str | None) -> None:
    async with management(hub.settings) as mgmt:
        await mgmt.delete_user(provisioning.broker_username(hub.settings.vhost, code))
        for name in (inbox, legacy_inbox_name(code)):
            if name:
                await mgmt.delete_queue(hub.settings.vhost, name)
    async with hub.db.session() as s, s.begin():
        await s.execute(delete(ApiToken).where(ApiToken.tenant_code == code))
        await s.execute(delete(Tenant).where(Tenant.code == code))


# -- per-tenant broker limits ----------------------------------------------------------------


async def test_a_tenant_cannot_open_more_connections_or_channels_than_its_limits(hub: RunningHub) -> None:
    tight = hub.settings.model_copy(update={"tenant_max_connections": 2, "tenant_max_channels": 3})
    async with temp_tenant(hub, tight) as creds:
        async with management(hub.settings) as mgmt:
            assert await mgmt.user_limits(creds.username) == {"max-connections": 2, "max-channels": 3}
        url = tenant_url(hub, creds)
        first, second = await aio_pika.connect(url), await aio_pika.connect(url)
        try:
            # The broker answers the third Connection.Open with Connection.Close (connection
            # limit reached); aiormq reports that as InvalidFrameError.
            with pytest.raises(InvalidFrameError, match=r"Connection\.Close"):
                await aio_pika.connect(url)
            async with management(hub.settings) as mgmt:
                assert len(await mgmt.connections_of(creds.username)) == 2
            channels = [await first.channel(), await first.channel(), await second.channel()]
            assert all(not ch.is_closed for ch in channels)
            # The fourth channel over both connections is refused (and that connection closed).
            with pytest.raises(ConnectionNotAllowed, match="maximum allowed user limit of \\(3\\)"):
                await asyncio.wait_for(second.channel(), 10)
            # Other tenants are not touched by this tenant's limits.
            bystander = await hub.connector("GM0518")
            sent = await bystander.send(PING, {"text": "nog steeds"}, ["GM0599"])
            await hub.receive("GM0599", lambda e: e.id == sent.id)
        finally:
            for conn in (first, second):
                with suppress(Exception):
                    await conn.close()


async def test_doctor_reports_the_limits_and_warns_when_one_is_missing(hub: RunningHub) -> None:
    checks = {c.name: c for c in await doctor.run_checks(hub.settings, probe=False)}
    limits = checks["tenant broker limits"]
    settings = hub.settings
    wanted = f"max-connections {settings.tenant_max_connections}, max-channels {settings.tenant_max_channels}"
    assert limits.status == "pass" and wanted in limits.detail, limits
    async with temp_tenant(hub) as creds:
        async with management(hub.settings) as mgmt:
            await mgmt._call("DELETE", f"/user-limits/{creds.username}/max-channels")
            assert await mgmt.user_limits(creds.username) == {
                "max-connections": hub.settings.tenant_max_connections
            }
        checks = {c.name: c for c in await doctor.run_checks(hub.settings, probe=False)}
        limits = checks["tenant broker limits"]
        assert limits.status == "warn" and creds.tenant in limits.detail, limits
        assert not doctor.failed([c for c in checks.values() if c.name != "tenant broker limits"])
        # `inbeeld tenant provision` puts them back.
        async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
            async with hub.db.session() as s, s.begin():
                again = await provisioning.provision_tenant(s, mgmt, channel, hub.settings, creds.tenant)
            assert again.inbox == creds.inbox  # re-provisioning keeps the inbox
            assert await mgmt.user_limits(creds.username) == provisioning.limits_for(hub.settings)
        checks = {c.name: c for c in await doctor.run_checks(hub.settings, probe=False)}
        assert checks["tenant broker limits"].status == "pass"


# -- one active consumer per inbox -----------------------------------------------------------


async def test_a_second_instance_stands_by_and_only_one_receives(hub: RunningHub) -> None:
    code, inbox = "GM0957", hub.inbox("GM0957")
    await hub.drain(code)
    await (await hub.connector(code)).close()  # the shared test connector must not compete
    hub.connectors.pop(code)
    first = Connector(code, hub.tenant_url(code), inbox_name=inbox, system="first")
    second = Connector(code, hub.tenant_url(code), inbox_name=inbox, system="second")
    got: dict[str, list[str]] = {"first": [], "second": []}
    marker = uuid.uuid4().hex[:8]

    async def read(name: str, c: Connector) -> None:
        async for message in c.inbox():
            await message.ack()
            if str((message.event.data or {}).get("text", "")).startswith(marker):
                got[name].append(message.event.id)

    await first.connect()
    await second.connect()
    sender = await hub.connector("GM0307")
    tasks = []
    try:
        tasks.append(asyncio.create_task(read("first", first)))
        # The broker's own count (a passive declare), not the management API's: its statistics
        # lag by seconds and may still show the shared connector closed above.
        for _ in range(100):
            if (await second.inbox_status()).consumers:
                break
            await asyncio.sleep(0.1)
        with capture_logs() as logs:
            tasks.append(asyncio.create_task(read("second", second)))
            for _ in range(100):
                if second.standby:
                    break
                await asyncio.sleep(0.05)
        assert second.standby and not first.standby
        [standby] = [e for e in logs if e["event"] == "connector.standby"]
        assert standby["tenant"] == code and standby["log_level"] == "warning"
        assert inbox not in str(standby)  # the name stays out of logs

        sent = [(await sender.send(PING, {"text": f"{marker} {i}"}, [code])).id for i in range(10)]
        for _ in range(200):
            if len(got["first"]) == len(sent):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # room for a wrongly shared copy to reach the standby
        assert got == {"first": sent, "second": []}

        # The standby takes over when the active instance goes away.
        tasks[0].cancel()
        await first.close()
        later = (await sender.send(PING, {"text": f"{marker} later"}, [code])).id
        for _ in range(200):
            if got["second"]:
                break
            await asyncio.sleep(0.05)
        assert got["second"] == [later] and not second.standby
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await first.close()
        await second.close()


def flat(table: str) -> str:
    """A rich table's text without its borders and line breaks (cells wrap)."""
    return re.sub(r"[\s│┃┏┓┗┛━─┡┩┢┪└┘┌┐├┤┼╇╈]+", " ", table)


async def test_connector_check_says_another_instance_is_consuming(hub: RunningHub, tmp_path: Path) -> None:
    code = "GM0307"
    parts = urlsplit(hub.tenant_url(code))
    plain = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 5672}", parts.path, "", ""))
    config = tmp_path / "connector.toml"
    config.write_text(
        f'tenant = "{code}"\n[broker]\nurl = "{plain}"\n'
        f'username = "{unquote(parts.username or "")}"\npassword = "{unquote(parts.password or "")}"\n'
        f'inbox = "{hub.inbox(code)}"\n[store]\npath = "connector.db"\n'
    )
    runner = CliRunner()
    await hub.drain(code)  # no consumer stays behind: drain cancels its consumer
    alone = await asyncio.to_thread(runner.invoke, connector_cli, ["check", "--config", str(config)])
    assert alone.exit_code == 0 and "no connector consuming" in flat(alone.output), alone.output

    running = Connector(code, hub.tenant_url(code), inbox_name=hub.inbox(code), system="running")
    await running.connect()
    reading = asyncio.create_task(anext(aiter(running.inbox())))
    try:
        async with management(hub.settings) as mgmt:
            for _ in range(100):
                if (await mgmt.queue(hub.settings.vhost, hub.inbox(code)) or {}).get("consumers"):
                    break
                await asyncio.sleep(0.1)
        both = await asyncio.to_thread(runner.invoke, connector_cli, ["check", "--config", str(config)])
        assert both.exit_code == 0, both.output
        assert "another instance" in flat(both.output) and "stand by" in flat(both.output), both.output

        wrong = config.read_text().replace(hub.inbox(code), legacy_inbox_name(code))
        config.write_text(wrong)
        bad = await asyncio.to_thread(runner.invoke, connector_cli, ["check", "--config", str(config)])
        assert bad.exit_code == 1 and "does not exist" in flat(bad.output), bad.output
    finally:
        reading.cancel()
        with suppress(BaseException):
            await reading
        await running.close()


async def test_an_outdated_inbox_name_is_a_clear_error_not_a_retry_loop(hub: RunningHub) -> None:
    c = Connector("GM0307", hub.tenant_url("GM0307"), inbox_name=legacy_inbox_name("GM0307"), system="old")
    await c.connect()
    try:
        with pytest.raises(InboxUnavailable) as caught:
            await asyncio.wait_for(anext(aiter(c.inbox())), 10)
        assert "does not exist" in caught.value.message and "/tenants/me" in caught.value.message
        assert legacy_inbox_name("GM0307") not in caught.value.message  # names stay out of logs
        nameless = Connector("GM0307", hub.tenant_url("GM0307"), system="sender-only")
        await nameless.connect()
        try:
            with pytest.raises(InboxUnavailable, match="inbox_name"):
                await anext(aiter(nameless.inbox()))
            await nameless.send(PING, {"text": "sending needs no inbox"}, ["GM0518"])
        finally:
            await nameless.close()
    finally:
        await c.close()


# -- moving old-style inboxes ----------------------------------------------------------------


def hub_cli(hub: RunningHub, *args: str) -> subprocess.CompletedProcess[str]:
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
        timeout=120,
    )


@asynccontextmanager
async def old_style_tenant(hub: RunningHub) -> AsyncIterator[BrokerCredentials]:
    """A tenant as provisioning made it before inboxes had unguessable names: its inbox is
    `inbeeld.inbox.<code>` (without single-active-consumer), its read permission names that,
    and the store knows no inbox for it."""
    code = f"old{uuid.uuid4().hex[:8]}"
    username = provisioning.broker_username(hub.settings.vhost, code)
    password = uuid.uuid4().hex
    legacy = legacy_inbox_name(code)
    try:
        async with hub.db.session() as s, s.begin():
            await registry.add_tenant(s, code, "Gemeente van vroeger", "regional_bureau")  # a slug code
            await registry.set_broker_username(s, code, username)
        async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
            queue = await channel.declare_queue(
                legacy,
                durable=True,
                arguments=_quorum_args(hub.settings.delivery_limit, hub.settings.inbox_max_length),
            )
            await queue.bind(DELIVERY, routing_key=code)
            await mgmt.put_user(username, password)
            await provisioning.grant(mgmt, hub.settings, username, inbox=legacy)
        yield BrokerCredentials(code, username, password, hub.settings.vhost, None)
    finally:
        async with hub.db.session() as s:
            inbox = (await registry.get_tenant(s, code)).inbox
        await _remove(hub, code, inbox)


async def ready_in(hub: RunningHub, queue: str) -> int:
    async with amqp_channel(hub.settings) as channel:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def test_migrate_moves_an_old_style_inbox_without_losing_a_message(hub: RunningHub) -> None:
    sender = await hub.connector("GM0518")
    async with old_style_tenant(hub) as old:
        legacy = legacy_inbox_name(old.tenant)
        sent = [(await sender.send(PING, {"text": f"wachtend {i}"}, [old.tenant])).id for i in range(12)]
        for _ in range(200):
            if await ready_in(hub, legacy) == len(sent):
                break
            await asyncio.sleep(0.05)
        assert await ready_in(hub, legacy) == len(sent)
        # The tenant's old connector is busy: it holds three messages unacknowledged.
        conn = await aio_pika.connect(tenant_url(hub, old))
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=3)
        held: list[aio_pika.abc.AbstractIncomingMessage] = []

        async def hold(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            held.append(message)

        await (await channel.get_queue(legacy, ensure=False)).consume(hold)
        for _ in range(100):
            if len(held) == 3:
                break
            await asyncio.sleep(0.05)
        assert len(held) == 3

        done = await asyncio.to_thread(hub_cli, hub, "migrate")
        assert done.returncode == 0, done.stderr
        assert "12 messages moved from 1 old-style inboxes" in done.stdout, done.stdout

        async with hub.db.session() as s:
            inbox = (await registry.get_tenant(s, old.tenant)).inbox
        assert inbox is not None and inbox.startswith(legacy + ".")
        for _ in range(100):  # the old connector was disconnected, so it cannot ack late
            if not conn.connected.is_set():
                break
            await asyncio.sleep(0.05)
        assert not conn.connected.is_set()
        with suppress(Exception):
            await conn.close()
        async with management(hub.settings) as mgmt:
            assert await mgmt.queue(hub.settings.vhost, legacy) is None  # deleted: it was empty
            q = await mgmt.queue(hub.settings.vhost, inbox)
            assert q is not None and q["arguments"]["x-single-active-consumer"] is True
            perms = await mgmt.get_permissions(hub.settings.vhost, old.username)
            assert perms is not None and perms["read"] == provisioning.permissions_for(inbox=inbox)["read"]

        # The old name is gone for the tenant too; the new one holds every message, in order,
        # and later events are routed to it.
        with pytest.raises((ChannelNotFoundEntity, ChannelAccessRefused)):
            probe = await aio_pika.connect(tenant_url(hub, old))
            try:
                ch = await probe.channel()
                await (await ch.get_queue(legacy, ensure=False)).consume(hold)
            finally:
                await probe.close()
        after = (await sender.send(PING, {"text": "na de verhuizing"}, [old.tenant])).id
        async with Connector(old.tenant, tenant_url(hub, old), inbox_name=inbox, system="new") as c:
            got = []
            async for message in c.inbox(idle_timeout=3):
                await message.ack()
                got.append(message.event.id)
        assert got[: len(sent)] == sent and got[len(sent) :] == [after]

        again = await asyncio.to_thread(hub_cli, hub, "migrate")  # nothing left to do
        assert again.returncode == 0 and "0 messages moved" in again.stdout, again.stdout


async def test_provisioning_refuses_an_unmigrated_tenant_instead_of_forking_its_inbox(
    hub: RunningHub,
) -> None:
    async with old_style_tenant(hub) as old:
        async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
            async with hub.db.session() as s, s.begin():
                with pytest.raises(provisioning.ProvisioningError, match="inbeeld migrate"):
                    await provisioning.provision_tenant(s, mgmt, channel, hub.settings, old.tenant)
        done = await asyncio.to_thread(hub_cli, hub, "tenant", "provision", old.tenant)
        assert done.returncode == 1 and "inbeeld migrate" in done.stderr and "Traceback" not in done.stderr


class _Api(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # pytest owns the signals

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.servers[0].sockets[0].getsockname()[1]}"


@asynccontextmanager
async def api_server(hub: RunningHub) -> AsyncIterator[str]:
    app = create_app(hub.settings, hub.db)
    server = _Api(uvicorn.Config(app, port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield server.url
    finally:
        server.should_exit = True
        await task


async def test_a_runtime_that_asks_the_hub_follows_its_inbox_through_migrate(
    hub: RunningHub, tmp_path: Path
) -> None:
    """A connector configured without `[broker] inbox` asks the hub (`GET /tenants/me`); while
    the hub has none for it, it waits and asks again; after `inbeeld migrate` it finds the new
    inbox and receives what waited in the old one, and what comes after."""
    sender = await hub.connector("GM0518")
    async with old_style_tenant(hub) as old, api_server(hub) as api_url:
        token = await hub.token("tenant", old.tenant)
        before = [(await sender.send(PING, {"text": f"voor {i}"}, [old.tenant])).id for i in range(3)]
        for _ in range(200):
            if await ready_in(hub, legacy_inbox_name(old.tenant)) == len(before):
                break
            await asyncio.sleep(0.05)
        parts = urlsplit(hub.settings.amqp_url_for())
        raw = {
            "tenant": old.tenant,
            "system": "migrating",
            "broker": {
                "url": urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[1], parts.path, "", "")),
                "username": old.username,
                "password": old.password,
                "heartbeat": 5,
            },
            "hub": {"url": api_url, "token": token},
            "store": {"path": "connector.db"},
            "sinks": [{"kind": "stdout"}],
        }
        runtime = Runtime(parse_config(raw, tmp_path), reconnect_max=1.0)
        with capture_logs() as logs:
            running = asyncio.create_task(runtime.run())
            try:
                await asyncio.wait_for(runtime.ready.wait(), 20)
                for _ in range(100):
                    if any(e["event"] == "runtime.inbox_unavailable" for e in logs):
                        break
                    await asyncio.sleep(0.05)
                waiting = [e for e in logs if e["event"] == "runtime.inbox_unavailable"]
                assert waiting and "no inbox for this tenant yet" in waiting[0]["error"]
                assert runtime.processed == 0

                done = await asyncio.to_thread(hub_cli, hub, "migrate")
                assert done.returncode == 0 and "3 messages moved" in done.stdout, done.stdout + done.stderr
                after = (await sender.send(PING, {"text": "na"}, [old.tenant])).id
                for _ in range(600):
                    if runtime.processed == len(before) + 1:
                        break
                    await asyncio.sleep(0.05)
                assert runtime.processed == len(before) + 1
                assert runtime.store is not None
                for event_id in [*before, after]:  # each one received and recorded
                    assert await runtime.store.seen(sender.source, event_id), event_id
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)


async def test_a_move_that_stops_half_way_loses_nothing_and_a_second_run_finishes(hub: RunningHub) -> None:
    """The new inbox refuses messages past its length limit: the move stops with a clear
    error, what was not confirmed stays in the old inbox, and `migrate` again moves the rest
    once there is room."""
    sender = await hub.connector("GM0518")
    small = hub.settings.model_copy(update={"inbox_max_length": 2})
    async with old_style_tenant(hub) as old:
        legacy = legacy_inbox_name(old.tenant)
        sent = [(await sender.send(PING, {"text": f"te veel {i}"}, [old.tenant])).id for i in range(5)]
        for _ in range(200):
            if await ready_in(hub, legacy) == len(sent):
                break
            await asyncio.sleep(0.05)
        async with management(small) as mgmt, amqp_channel(small) as channel:
            with pytest.raises(InboxMoveError, match=f"tenant {old.tenant}: the new inbox refused") as caught:
                await migrate_all(hub.db, mgmt, channel, small)
        assert "migrate` again" in caught.value.message
        # (A quorum queue lets one message past its limit before it refuses.)
        first = int(re.search(r"after (\d+) were moved", caught.value.message).group(1))  # type: ignore[union-attr]
        assert 2 <= first < len(sent)
        async with hub.db.session() as s:
            inbox = (await registry.get_tenant(s, old.tenant)).inbox
        assert inbox is not None
        assert await ready_in(hub, inbox) == first and await ready_in(hub, legacy) == len(sent) - first

        # With the tenant's connector consuming, the inbox has room again: a second run
        # moves the rest, and the connector has every message once, in order.
        got: list[str] = []
        async with Connector(old.tenant, tenant_url(hub, old), inbox_name=inbox, system="new") as c:

            async def read() -> None:
                async for message in c.inbox(prefetch=1):
                    await message.ack()
                    got.append(message.event.id)

            reading = asyncio.create_task(read())
            try:
                async with management(small) as mgmt, amqp_channel(small) as channel:
                    [outcome] = [o for o in await migrate_all(hub.db, mgmt, channel, small) if o.moved]
                assert outcome.moved == len(sent) - first and not outcome.legacy_left
                for _ in range(200):
                    if len(got) == len(sent):
                        break
                    await asyncio.sleep(0.05)
            finally:
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
        assert got == sent


async def test_the_api_tells_a_tenant_its_own_inbox_and_nobody_else_any(hub: RunningHub) -> None:
    transport = httpx.ASGITransport(app=create_app(hub.settings, hub.db))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as api:
        mine = {"Authorization": f"Bearer {await hub.token('tenant', 'GM0518')}"}
        me = (await api.get("/tenants/me", headers=mine)).json()
        assert me["code"] == "GM0518" and me["inbox"] == hub.inbox("GM0518")
        others = [hub.inbox(code) for code in ("GM0599", "GM0307", "GM0957", "ingrado")]
        for path in ("/tenants", "/groups", "/tenants/GM0599/keys", "/ledger", "/dead-letters"):
            response = await api.get(path, headers=mine)
            assert not any(name in response.text for name in others), path
        operator = {"Authorization": f"Bearer {await hub.token('operator')}"}
        listed = await api.get("/tenants", headers=operator)
        assert listed.status_code == 200 and "inbox" not in listed.text  # the operator needs none
        assert (await api.get("/tenants/me", headers=operator)).json() == {"scope": "operator"}


async def test_tenant_provision_prints_the_inbox_the_store_keeps_and_sets_the_limits(hub: RunningHub) -> None:
    code = f"tmp{uuid.uuid4().hex[:8]}"
    async with hub.db.session() as s, s.begin():
        await registry.add_tenant(s, code, "Nieuwe gemeente", "regional_bureau")  # a slug code
    inbox = None
    try:
        done = await asyncio.to_thread(hub_cli, hub, "tenant", "provision", code)
        assert done.returncode == 0, done.stderr
        printed = re.search(r"inbox \(the connector's broker\.inbox\): (\S+)", done.stdout)
        assert printed is not None, done.stdout
        async with hub.db.session() as s:
            inbox = (await registry.get_tenant(s, code)).inbox
        assert printed.group(1) == inbox and inbox.startswith(legacy_inbox_name(code) + ".")
        async with management(hub.settings) as mgmt:
            user = provisioning.broker_username(hub.settings.vhost, code)
            assert await mgmt.user_limits(user) == provisioning.limits_for(hub.settings)
            perms = await mgmt.get_permissions(hub.settings.vhost, user)
            assert perms is not None and perms["read"] == provisioning.permissions_for(inbox=inbox)["read"]
    finally:
        await _remove(hub, code, inbox)
