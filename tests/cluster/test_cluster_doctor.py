"""`inbeeld doctor` on a real three-node cluster: each quorum queue's leader and its three
members, and a warning naming the node that is away - asked through a node list whose first
node is the one that is down, so the command's own connections fail over too."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from hub import doctor
from hub.broker.topology import DEAD, ROUTER_QUEUE
from hub.config import Settings
from tests.faults.harness import RECEIVER, FaultDeployment
from tests.utils.cluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]


def run_doctor(settings: Settings, amqp_url: str, api_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INBEELD_AMQP_URL": amqp_url,
        "INBEELD_DATABASE_URL": settings.database_url,
        "INBEELD_VHOST": settings.vhost,
        "INBEELD_RABBITMQ_API_URL": api_url,
        "INBEELD_LOG_LEVEL": "WARNING",
        "INBEELD_DELIVERY_LIMIT": str(settings.delivery_limit),
        "COLUMNS": "2000",  # one line per check: a wrapped cell would split the names asserted on
    }
    return subprocess.run(
        [sys.executable, "-c", "from hub.cli import main; main()", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


async def test_doctor_reports_the_members_and_a_node_that_is_away(
    cluster: Cluster, cluster_deployment: FaultDeployment
) -> None:
    settings = cluster_deployment.hub.settings
    inbox = cluster_deployment.hub.inbox(RECEIVER)
    await asyncio.to_thread(cluster.restore)
    for queue in (ROUTER_QUEUE, DEAD, inbox):
        await cluster.until_members_online(settings.vhost, queue, 3)
    names = sorted(n.name for n in cluster.nodes)

    checks = {c.name: c for c in await doctor.run_checks(settings, probe=False)}
    for queue in (ROUTER_QUEUE, DEAD):
        q = await cluster.queue(settings.vhost, queue)
        assert sorted(q["members"]) == names  # RabbitMQ's default: a member on each of 3 nodes
        assert checks[f"replicas {queue}"].status == "pass"
        assert checks[f"replicas {queue}"].detail == f"leader {q['leader']}; 3 of 3 node(s)"
    assert checks["replicas tenant inboxes"].status == "pass"
    assert checks["replicas tenant inboxes"].detail.endswith("on 3 of 3 node(s) each")

    # Node 3 goes away (node 1 serves these settings' management API).
    away = cluster.nodes[2].name
    await asyncio.to_thread(cluster.stop, 2)
    try:
        # The management API learns of the missing member with its next statistics (seconds).
        for _ in range(60):
            checks = {c.name: c for c in await doctor.run_checks(settings, probe=False)}
            if all(checks[f"replicas {q}"].status == "warn" for q in (ROUTER_QUEUE, DEAD)):
                break
            await asyncio.sleep(1.0)
        for queue in (ROUTER_QUEUE, DEAD):
            assert checks[f"replicas {queue}"].status == "warn"
            assert f"offline: {away}" in checks[f"replicas {queue}"].detail
        assert checks["replicas tenant inboxes"].status == "warn"
        assert f"offline: {away}" in checks["replicas tenant inboxes"].detail
        # The command itself, given the node that is down first (its AMQP port and its management
        # API): it connects to the next one, its isolation probe passes, and the warning is no
        # failure (exit 0).
        api_urls = f"{cluster.nodes[2].api_url},{settings.rabbitmq_api_url}"
        # The management API's queue statistics come every few seconds and may still list the
        # member as online for one round: asked again, as the in-process checks above are.
        for _ in range(10):
            done = await asyncio.to_thread(run_doctor, settings, cluster.amqp_url(first=2), api_urls)
            if f"offline: {away}" in done.stdout:
                break
            await asyncio.sleep(2.0)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "WARN" in done.stdout and "FAIL" not in done.stdout
        assert f"offline: {away}" in done.stdout
        # The node that is away is named as such, not failed for having no file descriptors.
        assert f"node {away}" in done.stdout and "not running" in done.stdout
        assert f"file descriptors {away}" not in done.stdout
        assert "error when creating transport" not in done.stderr  # the skipped node is no error
        assert "publish with a spoofed user_id" in done.stdout
    finally:
        await asyncio.to_thread(cluster.restore)
