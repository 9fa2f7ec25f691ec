"""Poison messages: dead-lettered after the delivery limit with a reason, listed by the
operator API, replayed once the cause is fixed; the ledger API shows tenants their own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import httpx
import pytest

from hub.api.app import create_app
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker


class PoisonFor:
    """A workflow that fails (as a bug would) for one subject until it is 'fixed'."""

    prefixes = ("ping",)

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.broken = True
        self.attempts = 0

    async def check(self, s, sender, verified, recipients):
        if verified.event.subject == self.subject and self.broken:
            self.attempts += 1
            raise RuntimeError("simulated bug")
        return recipients

    async def record(self, s, sender, verified, recipients) -> None:
        return None

    async def sweep(self, s, now: datetime):
        return []


@pytest.fixture
def api(hub: RunningHub) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub.settings, hub.db)), base_url="http://hub"
    )


async def test_poison_ping_is_dead_lettered_listed_but_its_body_not_kept(hub: RunningHub, api) -> None:
    subject = f"poison-{uuid.uuid4().hex[:8]}"
    poison = PoisonFor(subject)
    hub.router.workflows.append(poison)
    try:
        amersfoort = await hub.connector("GM0307")
        event = await amersfoort.send("nl.leerplicht.ping", {"text": "poison"}, ["GM0957"], subject=subject)
        operator = {"Authorization": f"Bearer {await hub.token('operator')}"}
        dead = None
        for _ in range(100):
            listed = (await api.get("/dead-letters", headers=operator)).json()
            dead = next(
                (d for d in listed if d["sender"] == "GM0307" and d["reason"] == "delivery_limit"), None
            )
            if dead:
                break
            await asyncio.sleep(0.2)
        assert dead is not None, "the poison message was not dead-lettered"
        assert poison.attempts == hub.settings.delivery_limit + 1
        # the sender sees its own dead letter; another tenant does not
        mine = {"Authorization": f"Bearer {await hub.token('tenant', 'GM0307')}"}
        theirs = {"Authorization": f"Bearer {await hub.token('tenant', 'GM0957')}"}
        assert dead["id"] in [d["id"] for d in (await api.get("/dead-letters", headers=mine)).json()]
        assert dead["id"] not in [d["id"] for d in (await api.get("/dead-letters", headers=theirs)).json()]
        assert (await api.post(f"/dead-letters/{dead['id']}/replay", headers=mine)).status_code == 403

        # a ping is not signed or sealed: its body (free text) is not kept, only size and digest
        assert dead["body_kept"] is False and dead["size"] > 0 and len(dead["sha256"]) == 64
        poison.broken = False  # the bug is fixed, but there is nothing to replay
        replay = await api.post(f"/dead-letters/{dead['id']}/replay", headers=operator)
        assert replay.status_code == 400 and replay.json()["reason"] == "replay_refused", replay.text
        assert "not kept" in replay.json()["detail"]
        body = await api.get(f"/dead-letters/{dead['id']}/body", headers=operator)
        assert body.status_code == 404
        assert not [e for e in await hub.drain("GM0957") if e.id == event.id]
    finally:
        hub.router.workflows.remove(poison)


async def test_replay_of_unknown_dead_letter_is_404(hub: RunningHub, api) -> None:
    operator = {"Authorization": f"Bearer {await hub.token('operator')}"}
    response = await api.post("/dead-letters/999999/replay", headers=operator)
    assert response.status_code == 404 and response.json()["reason"] == "not_found"
