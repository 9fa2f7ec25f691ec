"""Alerts through their real interfaces: the report endpoint's refusals (documented in the
OpenAPI schema), a full inbox (`recipient_busy`) raising `inbox_full` once although two
evaluators look at the same time, the signed operator webhook, and the alert clearing when the
inbox is drained."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.alert_watch import AlertWatch
from hub.api.app import create_app
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.hubs import RunningHub
from tests.utils.webhook import Webhook

pytestmark = pytest.mark.broker

SECRET = "an operator webhook secret of 32+ chars"
PING = "nl.leerplicht.ping"
FULL = "inbox_full"


@pytest.fixture(scope="module")
def operator_hook() -> Iterator[Webhook]:
    hook = Webhook(SECRET.encode()).start()
    yield hook
    hook.stop()


@pytest.fixture(scope="module")
async def small_hub(tmp_session: Path, operator_hook: Webhook) -> AsyncIterator[RunningHub]:
    label = f"alerts_{uuid.uuid4().hex[:6]}"
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{label}",
        database_url=await make_database_url("postgres", label, tmp_session),
        inbox_max_length=3,
        alert_interval=0,  # the tests evaluate themselves
        alert_webhook_url=operator_hook.url,
        alert_webhook_secret=SECRET,
    )
    async with private_hub(settings, "postgres", label) as hub:
        yield hub


def api(hub: RunningHub) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(hub.settings, hub.db))
    return httpx.AsyncClient(transport=transport, base_url="http://hub.test")


async def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def test_the_health_report_refuses_bad_input_with_documented_problems(small_hub: RunningHub) -> None:
    tenant = {"Authorization": f"Bearer {await small_hub.token('tenant', 'GM0599')}"}
    operator = {"Authorization": f"Bearer {await small_hub.token('operator')}"}
    async with api(small_hub) as client:
        documented = (await client.get("/openapi.json")).json()["paths"]["/tenants/me/health"]["post"]
        assert {"400", "401", "403", "422"} <= set(documented["responses"])
        cases: list[tuple[dict[str, str], Any, int, str]] = [
            ({}, {"webhook": "failing"}, 401, "unauthenticated"),
            (operator, {"webhook": "failing"}, 403, "forbidden"),
            (tenant, {"webhook": "broken"}, 422, "invalid_request"),
            (tenant, {"webhook": "failing", "parked": -1}, 422, "invalid_request"),
            (tenant, {"webhook": "failing", "status": 99}, 422, "invalid_request"),
            (tenant, {"webhook": "ok", "bsn": "999990019"}, 422, "invalid_request"),
        ]
        for headers, body, status, reason in cases:
            answer = await client.post("/tenants/me/health", json=body, headers=headers)
            assert answer.status_code == status, (body, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["reason"] == reason
            assert "999990019" not in answer.text
        not_json = await client.post(
            "/tenants/me/health", content=b"{not json", headers={**tenant, "Content-Type": "application/json"}
        )
        assert not_json.status_code in (400, 422) and not_json.json()["reason"]
        # Nothing was raised by any of them.
        listed = await client.get("/alerts", params={"state": "all"}, headers=operator)
        assert listed.status_code == 200
        assert [a for a in listed.json() if a["tenant"] == "GM0599"] == []
        assert (await client.get("/alerts", headers=tenant)).status_code == 403


async def test_a_full_inbox_raises_one_alert_and_clears_when_drained(
    small_hub: RunningHub, operator_hook: Webhook
) -> None:
    sender = await small_hub.connector("GM0307")
    marker = uuid.uuid4().hex[:8]
    ids = {(await sender.send(PING, {"text": f"{marker}-{i}"}, ["GM0957"])).id for i in range(6)}
    # Past INBEELD_INBOX_MAX_LENGTH=3 (a quorum queue may take one more) the sender is told
    # recipient_busy.
    [busy, *_] = await small_hub.receive(
        "GM0307", lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] in ids
    )
    assert busy.data["reason"] == "recipient_busy"

    # Two hub processes evaluate at the same moment: one alert, one post.
    first, second = AlertWatch(small_hub.settings, small_hub.db), AlertWatch(small_hub.settings, small_hub.db)
    operator = {"Authorization": f"Bearer {await small_hub.token('operator')}"}

    async def raised() -> bool:
        await asyncio.gather(first.evaluate(), second.evaluate())
        async with api(small_hub) as client:
            found = (await client.get("/alerts", headers=operator)).json()
        return any(a["tenant"] == "GM0957" and a["kind"] == "inbox_full" for a in found)

    try:
        await eventually(raised, "inbox_full raised")
        await asyncio.gather(first.evaluate(), second.evaluate())
        posts = [d for d in operator_hook.requests if d.body["data"]["kind"] == "inbox_full"]
        assert [(d.signed, d.body["data"]["state"], d.body["data"]["tenant"]) for d in posts] == [
            (True, "raised", "GM0957")
        ]
        assert posts[0].body["type"] == "nl.leerplicht.hub.alert"

        # The connector drains its inbox: the alert clears, once.
        await small_hub.drain("GM0957")

        async def cleared() -> bool:
            await asyncio.gather(first.evaluate(), second.evaluate())
            return any(d.body["data"]["state"] == "cleared" for d in operator_hook.requests)

        await eventually(cleared, "inbox_full cleared")
        await asyncio.gather(first.evaluate(), second.evaluate())
        states = [d.body["data"]["state"] for d in operator_hook.requests if d.body["data"]["kind"] == FULL]
        assert states == ["raised", "cleared"]
        async with api(small_hub) as client:
            assert (await client.get("/alerts", headers=operator)).json() == []
            history = (await client.get("/alerts", params={"state": "all"}, headers=operator)).json()
        assert [(a["kind"], a["cleared_at"] is not None) for a in history] == [("inbox_full", True)]
    finally:
        await first.stop()
        await second.stop()
