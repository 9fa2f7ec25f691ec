"""A webhook failing at a tenant, reported by its connector: a real connector whose case system
answers 400 parks the event and reports it (`POST /tenants/me/health`); the hub raises
`webhook_failing` (one signed post to the operator's webhook, a `hub.alert` the connector logs
and hands to its case system). The case system fixed and the item retried with
`inbeeld-connector outbox retry`, the connector reports recovery and the alert clears."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from connectors import Connector
from connectors.cli import app
from connectors.config import load_config
from hub.api.app import create_app
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.connectors.test_runtime import Running
from tests.utils.api import served
from tests.utils.hubs import RunningHub
from tests.utils.webhook import Webhook

pytestmark = pytest.mark.broker

TENANT = "GM0957"
PING = "nl.leerplicht.ping"
CASE_SECRET = b"the case system's webhook secret"
OPERATOR_SECRET = "the operator's webhook secret, 32+ characters"


@pytest.fixture
def operator_hook() -> Iterator[Webhook]:
    hook = Webhook(OPERATOR_SECRET.encode()).start()
    yield hook
    hook.stop()


@pytest.fixture
def case_system() -> Iterator[Webhook]:
    hook = Webhook(CASE_SECRET).start()
    yield hook
    hook.stop()


@pytest.fixture
async def alert_hub(tmp_session: Path, operator_hook: Webhook) -> AsyncIterator[RunningHub]:
    label = f"webhook_alerts_{uuid.uuid4().hex[:6]}"
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{label}",
        database_url=await make_database_url("postgres", label, tmp_session),
        alert_interval=0.5,
        alert_webhook_url=operator_hook.url,
        alert_webhook_secret=OPERATOR_SECRET,
    )
    async with private_hub(settings, "postgres", label) as hub:
        yield hub


def config_text(hub: RunningHub, api_url: str, token: str, case_system: Webhook) -> str:
    parts = urlsplit(hub.tenant_url(TENANT))
    broker = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 5672}", parts.path, "", ""))
    return (
        f'tenant = "{TENANT}"\nsystem = "test-alerts"\n'
        f'[broker]\nurl = "{broker}"\nusername = "{unquote(parts.username or "")}"\n'
        f'password = "{unquote(parts.password or "")}"\ninbox = "{hub.inbox(TENANT)}"\nheartbeat = 5\n'
        f'[hub]\nurl = "{api_url}"\ntoken = "{token}"\n'
        '[store]\npath = "connector.db"\n'
        f'[[sinks]]\nkind = "webhook"\nname = "case-system"\nurl = "{case_system.url}"\n'
        f'secret = "{CASE_SECRET.decode()}"\npark_after = 2\ninitial_backoff_seconds = 0.05\n'
        "max_backoff_seconds = 0.3\ntimeout_seconds = 5\n"
    )


async def until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def alert_posts(hook: Webhook) -> list[dict[str, Any]]:
    with hook.lock:
        return [d.body["data"] for d in hook.requests if d.signed]


async def test_a_parked_webhook_event_raises_an_alert_and_recovery_clears_it(
    alert_hub: RunningHub, operator_hook: Webhook, case_system: Webhook, tmp_path: Path
) -> None:
    hub = alert_hub
    marker = uuid.uuid4().hex[:8]
    fixed = False
    # The case system refuses our pings (400) until fixed; hub.alert documents it takes.
    case_system.answer = lambda body: 400 if body["type"] == PING and not fixed else None
    token = await hub.token("tenant", TENANT)
    sender = Connector("GM0307", hub.tenant_url("GM0307"), system="test-alerts")
    await sender.connect()
    try:
        async with served(create_app(hub.settings, hub.db), lifespan=True) as api_url:
            path = tmp_path / "connector.toml"
            path.write_text(config_text(hub, api_url, token, case_system))
            with capture_logs() as logs:
                async with Running(load_config(path)) as runtime:
                    await sender.send(PING, {"text": f"{marker}-refused"}, [TENANT])
                    await until(lambda: runtime.parked == 1, "parked")

                    # Raised: one signed post to the operator, the hub.alert at the case system.
                    await until(lambda: len(alert_posts(operator_hook)) == 1, "the raised post")
                    [raised] = alert_posts(operator_hook)
                    assert (raised["tenant"], raised["kind"], raised["state"]) == (
                        TENANT,
                        "webhook_failing",
                        "raised",
                    )
                    assert "HTTP 400" in raised["detail"] and "1 parked" in raised["detail"]
                    await until(
                        lambda: any(d.body["type"].endswith("hub.alert") for d in case_system.accepted()),
                        "the hub.alert at the case system",
                    )

                    # Fixed and retried: delivered, recovery reported, the alert cleared.
                    fixed = True
                    retried = await asyncio.to_thread(
                        CliRunner().invoke, app, ["outbox", "retry", "--all", "--config", str(path)]
                    )
                    assert retried.exit_code == 0, retried.output
                    await until(
                        lambda: any(f"{marker}-refused" in str(d.body) for d in case_system.accepted()),
                        "the retried event delivered",
                    )
                    await until(lambda: len(alert_posts(operator_hook)) == 2, "the cleared post")
                    await until(
                        lambda: (
                            sum(1 for d in case_system.accepted() if d.body["type"].endswith("hub.alert"))
                            == 2
                        ),
                        "the second hub.alert",
                    )
                    await asyncio.sleep(1.5)  # more evaluations and reports: nothing sent twice
    finally:
        await sender.close()
    assert [(p["kind"], p["state"]) for p in alert_posts(operator_hook)] == [
        ("webhook_failing", "raised"),
        ("webhook_failing", "cleared"),
    ]
    assert len({p["alert_id"] for p in alert_posts(operator_hook)}) == 1
    reported = [e for e in logs if e["event"] == "health.reported"]
    assert [e["webhook"] for e in reported if e["webhook"] == "failing"]
    assert reported[-1]["webhook"] == "ok"
    seen = [(e["kind"], e["state"]) for e in logs if e["event"] == "runtime.hub_alert"]
    assert seen == [("webhook_failing", "raised"), ("webhook_failing", "cleared")]
