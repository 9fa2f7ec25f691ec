"""The workspace over HTTP with a real store and keystore, but no hub or broker: the login and
its throttling, CSRF, security headers, roles, clear pages for bad input, and an answer that
cannot be sent leaves the offer open and writes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors import accounts, offers, processing_log, register
from connectors.config import parse_config
from connectors.keystore import Keystore
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.transfers import new_transfer_id, validate_dossier
from connectors.workspace import create_workspace
from connectors.workspace.i18n import CATALOGUE
from webui.passwords import MAX_FAILURES
from webui.security import CSP

PASSWORD = "een lang en geheim wachtwoord"
DOSSIER = json.loads((Path(__file__).parents[2] / "data" / "dossier.example.json").read_text("utf-8"))
TEMPLATES = Path(__file__).parents[3] / "connectors" / "workspace" / "templates"


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[ConnectorServices]:
    config = parse_config(
        {
            "tenant": "GM0599",
            "broker": {"url": "amqp://127.0.0.1:5672/nothing", "username": "nobody"},
            "store": {"path": "connector.db"},
        },
        tmp_path,
    )
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase="workspace test", scrypt_n=2**14)
    store = await LocalStore.open(config.store.path, keystore)
    try:
        yield ConnectorServices(config, keystore=keystore, store=store)
    finally:
        await store.close()


@pytest.fixture
async def web(services: ConnectorServices) -> AsyncIterator[httpx.AsyncClient]:
    app = create_workspace(services, secret="a test secret of the workspace")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://workspace") as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def _log_in(web: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    page = await web.get("/login")
    return await web.post("/login", data={"csrf": _csrf(page.text), "name": name, "password": password})


async def _offer(services: ConnectorServices) -> str:
    assert services.store is not None
    transfer_id = new_transfer_id("GM0518")
    await offers.keep(
        services.store, "ev-1", "GM0518", validate_dossier({**DOSSIER, "transfer_id": transfer_id})
    )
    return transfer_id


def test_dutch_and_english_say_the_same_and_every_key_a_template_uses_exists() -> None:
    assert set(CATALOGUE["nl"]) == set(CATALOGUE["en"])
    for key, text in CATALOGUE["nl"].items():
        assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", CATALOGUE["en"][key])), key
    used: set[str] = set()
    for template in [*TEMPLATES.glob("*.html"), TEMPLATES.parents[2] / "webui/templates/webui/layout.html"]:
        used |= set(re.findall(r"""\bt\(["']([a-z_.0-9]+)["']""", template.read_text()))
    used = {k for k in used if not k.endswith(".")}
    assert used and used <= set(CATALOGUE["nl"]), used - set(CATALOGUE["nl"])


async def test_pages_need_a_login_and_carry_the_security_headers(web: httpx.AsyncClient) -> None:
    r = await web.get("/")
    assert r.status_code == 303 and r.headers["location"].endswith("/login")
    r = await web.get("/login")
    assert r.status_code == 200 and "Inloggen" in r.text
    assert r.headers["content-security-policy"] == CSP and r.headers["x-frame-options"] == "DENY"
    assert "inbeeld_workspace_session=" in r.headers["set-cookie"]
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    r = await web.get("/login?lang=en")
    assert "Log in" in r.text
    r = await web.get("/static/vendor/htmx.min.js")
    assert r.status_code == 200 and "cache-control" not in r.headers
    r = await web.get("/?" + "x" * 3000)
    assert r.status_code == 414


async def test_wrong_passwords_lock_the_account(web: httpx.AsyncClient, services: ConnectorServices) -> None:
    assert services.store is not None
    await accounts.add(services.store, "anna", "officer", PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        r = await _log_in(web, "anna", "not the password at all")
        assert r.status_code == 401 and "Naam of wachtwoord is onjuist." in r.text
    r = await _log_in(web, "anna", "not the password at all")
    assert r.status_code == 401 and "Te veel mislukte pogingen" in r.text
    r = await _log_in(web, "anna")
    assert r.status_code == 401 and "Te veel mislukte pogingen" in r.text  # locked: even the right one
    r = await _log_in(web, "nobody-here")
    assert r.status_code == 401 and "Naam of wachtwoord is onjuist." in r.text


async def test_a_form_without_the_sessions_csrf_token_is_refused(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    await accounts.add(services.store, "anna", "officer", PASSWORD)
    r = await web.post("/login", data={"csrf": "forged", "name": "anna", "password": PASSWORD})
    assert r.status_code == 403 and "Het formulier is verlopen" in r.text
    assert (await _log_in(web, "anna")).status_code == 303
    transfer_id = await _offer(services)
    r = await web.post(f"/offers/{transfer_id}/accept", data={"csrf": "forged"})
    assert r.status_code == 403
    assert (await offers.get(services.store, transfer_id)).state == "offered"


async def test_a_viewer_sees_the_list_but_no_dossier(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    await accounts.add(services.store, "victor", "viewer", PASSWORD)
    transfer_id = await _offer(services)
    assert (await _log_in(web, "victor")).status_code == 303
    r = await web.get("/")
    assert transfer_id in r.text and f'href="/offers/{transfer_id}"' not in r.text
    assert "De hub is niet bereikbaar" in r.text  # no hub configured: the outgoing list says so
    r = await web.get(f"/offers/{transfer_id}")
    assert r.status_code == 403 and "Uw rol geeft geen toegang" in r.text
    assert DOSSIER["pupil"]["family_name"] not in r.text
    assert await processing_log.entries(services.store) == []


async def test_bad_input_gets_a_clear_page(web: httpx.AsyncClient, services: ConnectorServices) -> None:
    assert services.store is not None
    await accounts.add(services.store, "anna", "officer", PASSWORD)
    await _log_in(web, "anna")
    r = await web.get("/offers/tr-GM0518-doesnotexist")
    assert r.status_code == 404 and "Deze pagina bestaat niet." in r.text
    r = await web.get("/offers/" + "x" * 150)
    assert r.status_code == 400 and "not a transfer id" in r.text
    transfer_id = await _offer(services)
    page = await web.get(f"/offers/{transfer_id}")
    r = await web.post(f"/offers/{transfer_id}/reject", data={"csrf": _csrf(page.text), "reason": "bored"})
    assert r.status_code == 400 and "a reason is one of" in r.text
    r = await web.post(f"/offers/{transfer_id}/reject", data={"csrf": _csrf(page.text), "reason": "other"})
    assert r.status_code == 400 and "note" in r.text  # "other" needs a note: the contract says so
    assert (await offers.get(services.store, transfer_id)).state == "offered"
    assert "Traceback" not in r.text


async def test_an_answer_that_cannot_be_sent_leaves_the_offer_open(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    assert services.store is not None
    await accounts.add(services.store, "anna", "officer", PASSWORD)
    await _log_in(web, "anna")
    transfer_id = await _offer(services)
    page = await web.get(f"/offers/{transfer_id}")
    assert page.status_code == 200 and DOSSIER["pupil"]["bsn"] in page.text
    r = await web.post(f"/offers/{transfer_id}/accept", data={"csrf": _csrf(page.text)})
    assert r.status_code == 503 and "er is niets verstuurd" in r.text
    assert (await offers.get(services.store, transfer_id)).state == "offered"
    assert await register.lookup(services.store, DOSSIER["pupil"]["bsn"]) is None
    assert [(e.user_name, e.activity) for e in await processing_log.entries(services.store)] == [
        ("anna", "dossier_viewed")
    ]
