"""Hub events are never lost (`hub.publisher`'s outbox): a key rotation whose announcement the
broker failed to take right after the change committed is still announced, by a router's
sweep, with the same id and sequence, once; and an announcement that went out leaves nothing
behind for the sweep to send again."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from sqlalchemy import select

from connectors.keystore import Keystore
from hub import registry
from hub.api.app import create_app
from hub.store.models import HubOutboxCopy
from tests.utils.hubs import RunningHub
from tests.utils.keys import forget_keys

pytestmark = pytest.mark.broker

ROTATED = "nl.leerplicht.key.rotated"
TENANTS = ("GM0518", "GM0599", "GM0307", "GM0957", "ingrado")


@pytest.fixture
async def api(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hub.settings, hub.db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        yield c


async def _waiting(hub: RunningHub) -> set[int]:
    """The outbox rows waiting now (other tests on this hub may have left some of their own)."""
    async with hub.db.session() as s:
        return set(await s.scalars(select(HubOutboxCopy.id)))


async def _active_tenants(hub: RunningHub) -> int:
    async with hub.db.session() as s:  # other modules may have added tenants to this hub
        return len([t for t in await registry.list_tenants(s) if t.active])


async def _register(hub: RunningHub, api: httpx.AsyncClient, code: str, tmp_path: Path) -> set[str]:
    await forget_keys(hub, code)  # a first registration: allowed without a proof
    jwks = Keystore.create(tmp_path / f"{code}-{os.urandom(4).hex()}.json", kek=os.urandom(32)).public_jwks()
    token = await hub.token("tenant", code)
    r = await api.put("/keys", json=jwks, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return {k["kid"] for k in jwks["keys"]}


def _rotated(tenant: str, kids: set[str]) -> Any:
    return lambda e: e.type == ROTATED and e.data["tenant"] == tenant and set(e.data["kids"]) == kids


async def test_an_announcement_the_broker_dropped_after_the_commit_is_sent_by_the_sweep(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for code in TENANTS:
        await hub.drain(code)
    before = await _waiting(hub)

    # The broker connection breaks right after the key change commits: every publish of the
    # API's hub publisher fails as a lost connection does.
    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise ConnectionResetError("connection reset by peer")

    with monkeypatch.context() as patched:
        patched.setattr(aio_pika.Exchange, "publish", broken)
        kids = await _register(hub, api, "GM0957", tmp_path)  # committed: 200, not a 503

    # Nothing was announced, and the announcement waits in the outbox, one copy per tenant.
    assert not [e for e in await hub.drain("GM0599") if _rotated("GM0957", kids)(e)]
    ours = await _waiting(hub) - before
    assert len(ours) == await _active_tenants(hub)  # one copy per tenant

    # Within the grace period the sweep leaves it to its writer; after it, a router sends it.
    await hub.router.sweep()
    assert ours <= await _waiting(hub)
    later = datetime.now(UTC) + timedelta(seconds=hub.settings.outbox_grace + 1)
    await hub.router.sweep(later)
    assert not ours & await _waiting(hub)
    ids, sequences = set(), {}
    for code in TENANTS:
        [event] = await hub.receive(code, _rotated("GM0957", kids))
        assert event.source == hub.settings.hub_source and event.sequence is not None
        ids.add(event.id)
        sequences[code] = event.sequence
    assert len(ids) == 1  # one event, the same id everywhere

    # The sequences are the ones recorded with the change: the next hub event to an inbox
    # follows them without a gap, and nothing is sent a second time.
    await hub.router.sweep(later)
    assert not [e for e in await hub.drain("GM0599") if e.type == ROTATED]
    more = await _register(hub, api, "GM0957", tmp_path)
    for code in TENANTS:
        [event] = await hub.receive(code, _rotated("GM0957", more))
        assert event.sequence == sequences[code] + 1


async def test_an_announcement_that_went_out_leaves_nothing_in_the_outbox(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    before = await _waiting(hub)
    kids = await _register(hub, api, "GM0307", tmp_path)
    for code in TENANTS:
        await hub.receive(code, _rotated("GM0307", kids))
    assert await _waiting(hub) <= before  # its copies were cleared as they went out
