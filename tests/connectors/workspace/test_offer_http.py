"""The workspace's offer form over HTTP with a real store and keystore (no hub or broker): the
register's results offer each pupil to another municipality, a viewer may not open the form,
an unknown pupil is a page that says so, and without the hub and the broker the form says the
workspace cannot reach them before it shows any pupil data."""

from __future__ import annotations

import httpx

from connectors import accounts, register
from connectors.services import ConnectorServices
from tests.connectors.workspace.test_workspace_http import (  # the same workspace, logged in the same way
    PASSWORD,
    _csrf,
    _log_in,
    services,
    web,
)

__all__ = ["services", "web"]  # fixtures

ROW = {
    "bsn": "111222333",
    "given_names": "Sanne",
    "family_name": "Voorbeeld",
    "birth_date": "2014-05-17",
    "address": {
        "street": "Proefstraat",
        "house_number": 1,
        "house_letter": None,
        "house_number_addition": None,
        "postcode": "3011AA",
        "city": "Rotterdam",
        "municipality": "GM0599",
    },
    "school": None,
}


async def test_the_offer_form_needs_an_acting_role_a_known_pupil_and_the_hub(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    store = services.store
    await register.enter(store, ROW)
    found = await register.lookup(store, ROW["bsn"])
    assert found is not None
    await accounts.add(store, "anna", "officer", PASSWORD)
    await accounts.add(store, "victor", "viewer", PASSWORD)

    await _log_in(web, "anna")
    page = await web.get("/register")
    r = await web.post("/register/search", data={"csrf": _csrf(page.text), "q": ROW["bsn"]})
    assert f'href="/outgoing/new?pupil={found["id"]}"' in r.text
    assert "Sanne Voorbeeld overdragen aan een andere gemeente" in r.text
    r = await web.get(f"/outgoing/new?pupil={found['id']}")
    assert r.status_code == 503 and "Voorbeeld" not in r.text  # no hub, no broker: nothing shown
    r = await web.post("/outgoing/new", data={"csrf": _csrf(page.text), "pupil": found["id"], "to": "GM0518"})
    assert r.status_code == 503 and "Voorbeeld" not in r.text
    r = await web.get("/outgoing/new?pupil=not-a-pupil")
    assert r.status_code == 503  # the hub and broker are checked before the pupil is looked up

    await web.post("/logout", data={"csrf": _csrf(page.text)})
    await _log_in(web, "victor")
    r = await web.get(f"/outgoing/new?pupil={found['id']}")
    assert r.status_code == 403 and "Uw rol geeft geen toegang" in r.text
    r = await web.post(
        "/register/search", data={"csrf": _csrf((await web.get("/register")).text), "q": "sanne"}
    )
    assert "overdragen aan een andere gemeente" not in r.text
