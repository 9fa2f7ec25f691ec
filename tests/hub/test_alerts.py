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
from tests.utils.webhook import Delivery, Webhook

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


def about_0957(delivery: Delivery) -> bool:
    return bool(delivery.body["data"]["tenant"] == "GM0957")


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
    # Past INBEELD_INBOX_MAX_LENGTH=3 the sender is told recipient_busy. (A quorum queue
    # checks its limit as it applies what it took: a burst may all fit; one at a time, not.)
    ids = set()
    for i in range(8):
        ids.add((await sender.send(PING, {"text": f"{marker}-{i}"}, ["GM0957"])).id)
        await asyncio.sleep(0.3)
    [busy, *_] = await small_hub.receive(
        "GM0307", lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] in ids, timeout=30
    )
    assert busy.data["reason"] == "recipient_busy"
    await small_hub.drain("GM0307")  # the sender's inbox holds the other refusals: not full

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
            return any(d.body["data"]["state"] == "cleared" and about_0957(d) for d in operator_hook.requests)

        await eventually(cleared, "inbox_full cleared")
        await asyncio.gather(first.evaluate(), second.evaluate())
        states = [
            d.body["data"]["state"]
            for d in operator_hook.requests
            if d.body["data"]["kind"] == FULL and about_0957(d)
        ]
        assert states == ["raised", "cleared"]
        async with api(small_hub) as client:
            still = (await client.get("/alerts", headers=operator)).json()
            history = (await client.get("/alerts", params={"state": "all"}, headers=operator)).json()
        assert [a for a in still if a["tenant"] == "GM0957"] == []
        assert [(a["kind"], a["cleared_at"] is not None) for a in history if a["tenant"] == "GM0957"] == [
            (FULL, True)
        ]
    finally:
        await first.stop()
        await second.stop()


async def test_an_old_backlog_raises_inbox_backlog_and_taking_messages_clears_it(
    small_hub: RunningHub, operator_hook: Webhook
) -> None:
    # INBEELD_ALERT_BACKLOG_HOURS of two seconds, as an operator would set it (in hours).
    settings = small_hub.settings.model_copy(update={"alert_backlog_hours": 2 / 3600})
    watch = AlertWatch(settings, small_hub.db)
    sender = await small_hub.connector("GM0307")
    await small_hub.drain("GM0518")
    await sender.send(PING, {"text": "waits"}, ["GM0518"])

    def about_0518() -> list[dict[str, Any]]:
        with operator_hook.lock:
            found = [d.body["data"] for d in operator_hook.requests if d.signed]
        return [p for p in found if p["tenant"] == "GM0518" and p["kind"] == "inbox_backlog"]

    async def evaluated(count: int) -> bool:
        await watch.evaluate()
        return len(about_0518()) >= count

    try:
        await eventually(lambda: evaluated(1), "inbox_backlog raised")
        [raised] = about_0518()
        assert raised["state"] == "raised" and "1 messages waiting" in raised["detail"]
        await small_hub.drain("GM0518")  # the connector takes it: the head moved
        await eventually(lambda: evaluated(2), "inbox_backlog cleared")
        assert [p["state"] for p in about_0518()] == ["raised", "cleared"]
    finally:
        await watch.stop()
