"""The hub API's public face: health, the AsyncAPI contract and its link from /docs."""

from __future__ import annotations

import asyncio
import gc

import httpx
import pytest
import yaml

from hub.api.app import create_app
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker


@pytest.fixture
def api(hub: RunningHub) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub.settings, hub.db)), base_url="http://hub"
    )


async def test_health_reports_broker_and_database(api: httpx.AsyncClient) -> None:
    response = await api.get("/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "broker": "ok", "database": "ok"}


async def test_health_is_degraded_when_the_broker_is_away(hub: RunningHub) -> None:
    settings = hub.settings.model_copy(update={"amqp_url": "amqp://guest:guest@127.0.0.1:1/"})
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings, hub.db)), base_url="http://hub"
    )
    response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["broker"].startswith("unreachable")
    # The failed attempt left nothing for the garbage collector to close off the loop (where
    # aio-pika's own __del__ would leave an un-awaited close(): an error under -W error).
    await asyncio.to_thread(gc.collect)


async def test_asyncapi_is_served_and_linked_from_the_docs(api: httpx.AsyncClient) -> None:
    doc = yaml.safe_load((await api.get("/asyncapi.yaml")).text)
    assert doc["asyncapi"].startswith("3.")
    assert "nl.leerplicht.transfer.offered" in str(doc)
    openapi = (await api.get("/openapi.json")).json()
    assert "/asyncapi.yaml" in openapi["info"]["description"]
