"""The hub's connections carry a `connection_name`, so the broker's management UI tells a
router from the API's publisher: read back from the management API."""

from __future__ import annotations

import pytest

from hub.router import Router
from tests.utils.hubs import RunningHub
from tests.utils.rabbit import connection_names

pytestmark = [pytest.mark.broker, pytest.mark.parametrize("hub", ["sqlite"], indirect=True)]


async def test_a_router_names_its_connection(hub: RunningHub) -> None:
    router = Router(hub.settings, hub.db)
    await router.start()
    try:
        names = await connection_names(
            hub.settings, hub.settings.amqp_user, want=f"inbeeld-router {router.number} "
        )
    finally:
        await router.stop()
    assert [n for n in names if n.startswith(f"inbeeld-router {router.number} ")], names
