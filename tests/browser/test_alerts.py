"""An alert an operator can act on, end to end: a tenant whose inbox has no consumer past
INBEELD_ALERT_OFFLINE_HOURS (a few seconds here) raises `inbox_offline` in the API process's
alert watch (the app's lifespan runs it, as `inbeeld serve` does); the console shows it as a
banner and in the alerts list (axe on both), the operator webhook receives one signed post,
and the tenant's inbox gets a `hub.alert`. When its connector comes back (a consumer on the
inbox) the alert clears: the banner goes, one cleared post is sent, a second `hub.alert`."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from hub.api.app import create_app
from hub.services import management
from tests.browser.test_console import NAME, PASSWORD, assert_accessible_and_clean, cli, log_in
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.api import served
from tests.utils.hubs import RunningHub
from tests.utils.readers import InboxReader
from tests.utils.webhook import Delivery, Webhook

pytestmark = [pytest.mark.browser, pytest.mark.broker]

SECRET = "the operator's webhook secret, 32+ characters"
OFFLINE = "GM0957"
OFFLINE_SECONDS = 3.0


@pytest.fixture
def operator_hook() -> Iterator[Webhook]:
    hook = Webhook(SECRET.encode()).start()
    yield hook
    hook.stop()


@pytest.fixture
async def alert_hub(tmp_session: Path, operator_hook: Webhook) -> AsyncIterator[RunningHub]:
    label = f"alerts_web_{uuid.uuid4().hex[:6]}"
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{label}",
        database_url=await make_database_url("sqlite", label, tmp_session),
        alert_offline_hours=OFFLINE_SECONDS / 3600,
        alert_interval=0.5,
        alert_webhook_url=operator_hook.url,
        alert_webhook_secret=SECRET,
    )
    async with private_hub(settings, "sqlite", label) as hub:
        yield hub


async def until(check: Callable[[], Any], what: str, timeout: float = 40.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not (await result if inspect.isawaitable(result := check()) else result):
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def consumers(hub: RunningHub) -> dict[str, int]:
    """Consumers per tenant, as the management API (which the watch asks) reports them."""
    async with management(hub.settings) as mgmt:
        queues = {q["name"]: int(q.get("consumers") or 0) for q in await mgmt.list_queues(hub.settings.vhost)}
    return {code: queues.get(hub.inbox(code), 0) for code in hub.creds}


def posts_about(hook: Webhook, tenant: str) -> list[Delivery]:
    with hook.lock:
        return [d for d in hook.requests if d.body.get("data", {}).get("tenant") == tenant]


async def test_an_offline_tenant_is_alerted_and_cleared(
    page: Page, alert_hub: RunningHub, operator_hook: Webhook
) -> None:
    hub = alert_hub
    done = cli(hub, "operator", "add", NAME, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    # Every other tenant's connector is reading; the broker counts it before the watch starts.
    readers = {code: await InboxReader(hub, code).start() for code in hub.creds if code != OFFLINE}

    async def others_online() -> bool:
        seen = await consumers(hub)
        return all(seen[code] > 0 for code in readers) and seen[OFFLINE] == 0

    try:
        await until(others_online, "the other connectors counted")
        async with served(create_app(hub.settings, hub.db), lifespan=True) as url:
            console = url + "/console"
            await log_in(page, console)

            # Raised: a banner on the page the operator has open, without a reload.
            banner = page.locator("#alert-banner")
            await expect(banner).to_contain_text(OFFLINE, timeout=30_000)
            await expect(banner).to_contain_text("connector niet verbonden")
            await assert_accessible_and_clean(page)

            # The list says what it is and what to do.
            await banner.get_by_role("link", name="Naar de meldingen").click()
            await expect(page.get_by_role("heading", level=1, name="Meldingen")).to_be_visible()
            row = page.get_by_role("row", name=OFFLINE)
            await expect(row).to_contain_text("connector niet verbonden")
            await expect(row).to_contain_text("inbeeld-connector")
            await assert_accessible_and_clean(page)

            # One signed post to the operator's webhook: the hub.alert document.
            await until(lambda: len(posts_about(operator_hook, OFFLINE)) == 1, "the raised post")
            [raised] = posts_about(operator_hook, OFFLINE)
            assert raised.signed and raised.status == 200
            assert raised.body["type"] == "nl.leerplicht.hub.alert"
            assert raised.body["data"]["kind"] == "inbox_offline"
            assert raised.body["data"]["state"] == "raised"
            assert raised.event_id == raised.body["id"]

            # The connector comes back: it finds the hub.alert waiting, and the alert clears.
            back = await InboxReader(hub, OFFLINE).start()
            readers[OFFLINE] = back
            await until(lambda: len(back.of_type("hub.alert")) == 2, "both hub.alert events", 60)
            assert [e["data"]["state"] for e in back.of_type("hub.alert")] == ["raised", "cleared"]
            assert {e["data"]["alert_id"] for e in back.of_type("hub.alert")} == {
                raised.body["data"]["alert_id"]
            }

            await expect(banner).to_be_empty(timeout=30_000)
            await page.reload()
            await expect(page.locator("#alerts-none")).to_have_text("Geen open meldingen.")
            await expect(page.locator("#alerts-cleared")).to_contain_text(OFFLINE)
            await assert_accessible_and_clean(page)
            await page.goto(console + "/alerts?lang=en")
            await expect(page.get_by_role("heading", level=1, name="Alerts")).to_be_visible()
            await assert_accessible_and_clean(page)

            await asyncio.sleep(1.5)  # a few more evaluations: nothing is sent twice
            states = [d.body["data"]["state"] for d in posts_about(operator_hook, OFFLINE)]
            assert states == ["raised", "cleared"]
            assert all(d.signed for d in posts_about(operator_hook, OFFLINE))
            assert [d for d in operator_hook.requests if d.body["data"]["tenant"] != OFFLINE] == []
    finally:
        for reader in readers.values():
            await reader.stop()
