"""The connector's one client of the hub's API, against the real hub API (in process, ASGI):
answers decoded, and every refusal the hub sends as a problem mapped to our error tree once,
for the directory and the transfer status alike."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from connectors.directory import Directory
from connectors.hub_api import HubApi, HubApiError
from connectors.keystore import Keystore
from connectors.transfers import TransferStatus
from hub.api.app import create_app
from schemas.errors import Conflict, KeyReplacementRefused, NotFound
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys

pytestmark = pytest.mark.broker

OpenApi = Callable[[str | None], HubApi]


@pytest.fixture
def app(hub: RunningHub) -> FastAPI:
    return create_app(hub.settings, hub.db)


@pytest.fixture
async def hub_api(app: FastAPI) -> AsyncIterator[OpenApi]:
    opened: list[HubApi] = []

    def open_api(token: str | None) -> HubApi:
        api = HubApi("http://hub", token, transport=httpx.ASGITransport(app=app))
        opened.append(api)
        return api

    yield open_api
    for api in opened:
        await api.aclose()


async def test_an_answer_is_decoded(hub: RunningHub, hub_api: OpenApi) -> None:
    api = hub_api(await hub.token("tenant", "GM0518"))
    me = await api.get("/tenants/me")
    assert me["code"] == "GM0518" and me["inbox"] == hub.inbox("GM0518")
    assert await api.health() == 200


async def test_an_unknown_record_is_not_found_with_the_hubs_detail(hub: RunningHub, hub_api: OpenApi) -> None:
    api = hub_api(await hub.token("tenant", "GM0518"))
    with pytest.raises(NotFound) as caught:
        await TransferStatus(api).get("tr-GM0518-0000000000000000")
    assert caught.value.message and "HTTP" not in caught.value.message  # the hub's own words
    with pytest.raises(NotFound):
        await Directory(api).keys("GM9999")
    assert isinstance(await TransferStatus(api).list(role="offerer"), list)


async def test_a_refused_key_replacement_is_that_conflict_by_its_reason(
    hub: RunningHub, hub_api: OpenApi, tmp_path: Path
) -> None:
    registered = Keystore.create(tmp_path / "registered.keystore", kek=os.urandom(32))
    await install_keys(hub, "GM0599", registered.public_jwks())
    other = Keystore.create(tmp_path / "other.keystore", kek=os.urandom(32))
    directory = Directory(hub_api(await hub.token("tenant", "GM0599")))
    with pytest.raises(KeyReplacementRefused) as caught:
        await directory.register(other.public_jwks())  # no proof by a registered key
    assert isinstance(caught.value, Conflict)
    assert caught.value.reason == "key_replacement_refused" and caught.value.field == "proof"
    assert "rotation proof" in caught.value.message
    # with the registered keystore's proof the same client is let through
    await directory.register(registered.public_jwks(), tenant="GM0599", signers=registered.signing_keys())


async def test_a_refusal_outside_the_domain_tree_keeps_its_status_and_reason(
    hub: RunningHub, hub_api: OpenApi
) -> None:
    with pytest.raises(HubApiError) as caught:
        await hub_api("not-a-token").get("/tenants/me")
    assert caught.value.status == 401 and caught.value.hub_reason == "unauthenticated"
    assert "GET /tenants/me" in caught.value.message and "401" in caught.value.message
    operator = hub_api(await hub.token("operator"))
    with pytest.raises(HubApiError) as caught:
        await TransferStatus(operator).list()  # a tenant endpoint
    assert caught.value.status == 403 and caught.value.hub_reason == "forbidden"
    tenant = hub_api(await hub.token("tenant", "GM0518"))
    with pytest.raises(HubApiError) as caught:
        await tenant.put("/keys", {"keys": "not a list"})
    assert caught.value.status == 422 and caught.value.hub_reason == "key_invalid"  # hub.keys.KeyInvalid


async def test_an_unreachable_hub_is_a_hub_api_error_without_a_status() -> None:
    async with HubApi("http://127.0.0.1:9", "t", timeout=2) as api:
        with pytest.raises(HubApiError, match="cannot reach the hub for GET /groups") as caught:
            await Directory(api).groups()
        assert caught.value.status is None
        with pytest.raises(HubApiError, match="cannot reach"):
            await api.health()


async def test_an_answer_that_is_not_json_is_a_hub_api_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>"))
    async with HubApi("http://hub.test", "t", transport=transport) as api:
        with pytest.raises(HubApiError, match="not JSON") as caught:
            await TransferStatus(api).list()
        assert caught.value.status == 200
