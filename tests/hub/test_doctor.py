"""`inbeeld doctor` against the session's live deployment: it passes as provisioned, it fails
when a tenant's broker rights are wider than intended, and its probe leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, cast

import pytest

from hub import doctor, flows, provisioning, registry
from hub.config import Settings
from hub.services import management
from tests.conftest import base_settings
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

PROBE_ATTEMPTS = 7


async def leftovers(hub: RunningHub) -> list[str]:
    prefix = provisioning.broker_username(hub.settings.vhost, doctor.PROBE_PREFIX)
    async with management(hub.settings) as mgmt:
        users = [u["name"] for u in await mgmt.list_users() if u["name"].startswith(prefix)]
        queues = [
            q["name"] for q in await mgmt.list_queues(hub.settings.vhost) if doctor.PROBE_PREFIX in q["name"]
        ]
    return users + queues


async def test_doctor_passes_on_the_live_deployment(hub: RunningHub) -> None:
    checks = await doctor.run_checks(hub.settings)
    assert not doctor.failed(checks), "\n".join(f"{c.name}: {c.status} {c.detail}" for c in checks)
    by_name = {c.name: c for c in checks}
    for name in (
        "vhost",
        "exchange inbeeld.ingress",
        "exchange inbeeld.delivery",
        "exchange inbeeld.dlx",
        "queue inbeeld.router",
        "queue inbeeld.dead",
        "database migrated",
        "tenant broker permissions",
        "tenant inboxes",
        "tenant broker limits",
        "probe: control",
    ):
        assert by_name[name].status == "pass", name
    refused = [c for c in checks if c.name.startswith("probe: ") and c.name != "probe: control"]
    assert len(refused) == PROBE_ATTEMPTS and all("refused" in c.detail for c in refused)
    async with hub.db.session() as s:  # other modules may have added tenants to this hub
        tenants = await registry.list_tenants(s)
    assert f"{len(tenants)} tenants" in by_name["tenant broker permissions"].detail
    assert by_name["audit chain"].status in ("pass", "skip")
    if by_name["audit chain"].status == "pass":  # recorded, so the console shows it as the last
        async with hub.db.session() as s:
            last = await flows.last_verification(s)
        assert last is not None and last.intact and last.actor.startswith("operator:cli:")
    fds = [c for c in checks if c.name.startswith("file descriptors ")]
    async with management(hub.settings) as mgmt:
        nodes = await mgmt.nodes()
    assert [c.name for c in fds] == [f"file descriptors {n['name']}" for n in nodes]
    assert all(f"of {n['fd_total']} file descriptors" in c.detail for c, n in zip(fds, nodes, strict=True))
    # Where the queues live: on this single node, each on the one node there is.
    [node] = [n["name"] for n in nodes]
    for queue in ("inbeeld.router", "inbeeld.dead"):
        assert by_name[f"replicas {queue}"].status == "pass"
        assert by_name[f"replicas {queue}"].detail == f"leader {node}; 1 of 1 node(s)"
    assert by_name["replicas tenant inboxes"].status == "pass"
    assert by_name["replicas tenant inboxes"].detail.endswith("on 1 of 1 node(s) each")
    assert await leftovers(hub) == []
    # What to scrape: the test hub sets neither a metrics token nor a router port.
    assert (
        by_name["scrape: hub API"].status == "warn"
        and "INBEELD_METRICS_TOKEN" in by_name["scrape: hub API"].detail
    )
    assert by_name["scrape: routers"].status == "warn"


def test_doctor_says_what_to_scrape() -> None:
    configured = Settings(metrics_token="t" * 16, router_metrics_port=9470, router_metrics_host="10.0.0.5")
    by_name = {c.name: c for c in doctor.monitoring(configured)}
    assert by_name["scrape: hub API"].status == "pass" and "bearer token" in by_name["scrape: hub API"].detail
    assert by_name["scrape: routers"].detail == "each `inbeeld router` on 10.0.0.5:9470/metrics"


@pytest.mark.parametrize("widen", ["permissions", "topic permissions"])
async def test_doctor_fails_when_a_tenant_may_do_more_than_intended(hub: RunningHub, widen: str) -> None:
    creds = hub.creds["GM0957"]
    async with management(hub.settings) as mgmt:
        try:
            if widen == "permissions":
                wider = {**provisioning.permissions_for(inbox=hub.inbox("GM0957")), "write": ".*"}
                await mgmt.set_permissions(hub.settings.vhost, creds.username, **wider)
            else:
                await mgmt.set_topic_permissions(
                    hub.settings.vhost, creds.username, "inbeeld.ingress", write=".*", read="^$"
                )
            checks = await doctor.run_checks(hub.settings, probe=False)
        finally:
            await provisioning.grant(mgmt, hub.settings, creds.username, inbox=hub.inbox("GM0957"))
    [failure] = [c for c in checks if c.status == "fail"]
    assert failure.name == "tenant broker permissions"
    assert failure.detail.startswith(f"GM0957: {widen}")
    assert not doctor.failed(await doctor.run_checks(hub.settings, probe=False))


async def test_doctor_reports_a_missing_vhost_and_an_unmigrated_database(
    hub: RunningHub, tmp_path: Path
) -> None:
    settings = hub.settings.model_copy(
        update={
            "vhost": f"inbeeld-absent-{uuid.uuid4().hex[:6]}",
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
        }
    )
    checks = {c.name: c for c in await doctor.run_checks(settings)}
    assert checks["vhost"].status == "fail"
    assert checks["database migrated"].status == "fail"
    assert checks["tenant broker permissions"].status == "skip"
    assert "exchange inbeeld.ingress" not in checks


def run_doctor(hub: RunningHub, vhost: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INBEELD_AMQP_URL": hub.settings.amqp_url,
        "INBEELD_DATABASE_URL": hub.settings.database_url,
        "INBEELD_VHOST": vhost,
        "INBEELD_RABBITMQ_API_URL": hub.settings.rabbitmq_api_url,
        "INBEELD_LOG_LEVEL": "WARNING",
        "INBEELD_DELIVERY_LIMIT": str(hub.settings.delivery_limit),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-c", "from hub.cli import main; main()", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_doctor_command_exit_codes(hub: RunningHub) -> None:
    ok = await asyncio.to_thread(run_doctor, hub, hub.settings.vhost)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS" in ok.stdout and "FAIL" not in ok.stdout
    assert "publish with a spoofed user_id" in ok.stdout
    bad = await asyncio.to_thread(run_doctor, hub, f"inbeeld-absent-{uuid.uuid4().hex[:6]}")
    assert bad.returncode == 1 and "FAIL" in bad.stdout
    assert await leftovers(hub) == []


class _ThreeNodes:
    """The management API's answers on a three-node cluster (the shapes RabbitMQ 3.10 gives):
    one inbox placed on two nodes, one with a member offline."""

    NODES = ["rabbit@a", "rabbit@b", "rabbit@c"]

    async def nodes(self) -> list[dict[str, Any]]:
        return [{"name": n, "running": True} for n in self.NODES]

    async def list_queues(self, vhost: str) -> list[dict[str, Any]]:
        full = {"type": "quorum", "leader": "rabbit@a", "members": self.NODES, "online": self.NODES}
        return [
            {**full, "name": "inbeeld.router"},
            {**full, "name": "inbeeld.dead", "online": ["rabbit@a", "rabbit@b"]},
            {**full, "name": "inbox.gm0518.x", "members": ["rabbit@a", "rabbit@b"]},
            {**full, "name": "inbox.gm0599.y"},
            {"type": "classic", "name": "amq.gen-reply", "node": "rabbit@a"},
        ]


async def test_doctor_warns_of_quorum_queues_with_too_few_or_offline_members() -> None:
    checks = {
        c.name: c
        for c in await doctor._replicas(cast(Any, _ThreeNodes()), base_settings(vhost="inbeeld-cluster"))
    }
    assert checks["replicas inbeeld.router"].status == "pass"
    assert checks["replicas inbeeld.router"].detail == "leader rabbit@a; 3 of 3 node(s)"
    assert checks["replicas inbeeld.dead"].status == "warn"
    assert "offline: rabbit@c" in checks["replicas inbeeld.dead"].detail
    inboxes = checks["replicas tenant inboxes"]
    assert inboxes.status == "warn"
    assert inboxes.detail == "1 of 2: inbox.gm0518.x: 2 member(s), want 3"
