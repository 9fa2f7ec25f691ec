"""Issue 23, "past one machine": a three-node RabbitMQ cluster of this module's own, and on
it a fresh deployment (own vhost, own PostgreSQL database, the five seed tenants) whose router
runs as an OS process, as in tests/faults. A summary line per scenario in the terminal
report: `fault cluster-<name>: sent N, delivered N, lost 0, duplicated 0, <s>s`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.conftest import RUN_ID, base_settings, drop_database, make_database_url
from tests.faults.harness import FaultDeployment, Outcome
from tests.utils.cluster import Cluster, three_node_cluster
from tests.utils.hubs import start_hub
from tests.utils.proxy import TcpProxy
from tests.utils.webhook import Webhook

OUTCOMES: list[Outcome] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES:
        return
    terminalreporter.section("cluster")
    for outcome in OUTCOMES:
        terminalreporter.write_line(outcome.line())


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    with three_node_cluster() as running:
        yield running


@pytest.fixture(scope="session")
async def cluster_deployment(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FaultDeployment]:
    tmp = tmp_path_factory.mktemp("cluster")
    label = "cluster"
    url = await make_database_url("postgres", label, tmp)
    settings = base_settings(
        vhost=f"inbeeld-cluster-{RUN_ID}",
        database_url=url,
        delivery_limit=5,
        amqp_url=cluster.amqp_url(),
        rabbitmq_api_url=cluster.nodes[0].api_url,
    )
    hub = dep = None
    pg_proxy = TcpProxy("127.0.0.1", 5432)  # the router's way to PostgreSQL (not cut here)
    try:
        hub = await start_hub(settings)
        await hub.router.stop()  # the routers of this deployment are OS processes
        await pg_proxy.start()
        dep = FaultDeployment(hub, url.rsplit("/", 1)[1], pg_proxy, tmp)
        yield dep
    finally:
        if dep is not None:
            dep.router.stop()
        if hub is not None:
            await hub.db.close()
        await pg_proxy.close()
        await drop_database("postgres", label)  # the vhost goes with the cluster


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(b"faults-webhook-secret").start()
    yield hook
    hook.stop()
