"""Fault-injection fixtures: one fresh deployment (own vhost, own PostgreSQL database, the
five seed tenants) whose router runs as an OS process, and a summary line per scenario in
the terminal report:  `fault <name>: sent N, delivered N, lost 0, duplicated 0, <s>s`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.conftest import RUN_ID, base_settings, drop_database, make_database_url
from tests.faults.harness import FaultDeployment, Outcome
from tests.utils.hubs import start_hub
from tests.utils.proxy import TcpProxy
from tests.utils.rabbit import remove_slowly
from tests.utils.webhook import Webhook

OUTCOMES: list[Outcome] = []
EXTRA_LINES: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not OUTCOMES and not EXTRA_LINES:
        return
    terminalreporter.section("faults")
    for outcome in OUTCOMES:
        terminalreporter.write_line(outcome.line())
    for line in EXTRA_LINES:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
async def fault_deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaultDeployment]:
    tmp = tmp_path_factory.mktemp("faults")
    label = "faults"
    url = await make_database_url("postgres", label, tmp)
    settings = base_settings(vhost=f"inbeeld-faults-{RUN_ID}", database_url=url, delivery_limit=5)
    hub = dep = None
    pg_proxy = TcpProxy("127.0.0.1", 5432)
    try:
        hub = await start_hub(settings)
        # The router of this deployment is an OS process, not in-process.
        await hub.router.stop()
        await pg_proxy.start()
        dep = FaultDeployment(hub, url.rsplit("/", 1)[1], pg_proxy, tmp)
        dep.router.start()
        await dep.router_ready()
        yield dep
    finally:
        if dep is not None:
            dep.router.stop()
        if hub is not None:
            await hub.db.close()
        await pg_proxy.close()
        await remove_slowly(settings)
        await drop_database("postgres", label)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(b"faults-webhook-secret").start()
    yield hook
    hook.stop()


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    return tmp_path
