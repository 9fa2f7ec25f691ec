"""The console's flows page, the overview's activity and group membership over HTTP, on each
store backend: a login first, bad input answered with a clear page (never a traceback), forms
refused without their CSRF token, a membership change carried out and audited."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from hub.seed import seed_all
from hub.store.db import Database
from hub.store.models import AuditRecord
from tests.hub.web import test_console_http
from tests.hub.web.test_console_http import csrf_of, log_in

# The console over ASGI with a login `anna`, as test_console_http makes it, per backend.
db = test_console_http.db
web = test_console_http.web


async def test_the_new_pages_need_a_login(web: httpx.AsyncClient) -> None:
    for path in ("/console/flows", "/console/flows/live", "/console/overview/activity"):
        r = await web.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    r = await web.get("/console/overview/activity", headers={"HX-Request": "true"})
    assert r.headers["hx-redirect"] == "/console/login"
    r = await web.post("/console/memberships", data={"group": "landelijk", "tenant": "GM0307"})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"


async def test_a_bad_number_of_days_is_a_message_on_the_page(web: httpx.AsyncClient) -> None:
    await log_in(web)
    ok = await web.get("/console/flows", params={"days": "3"})
    assert ok.status_code == 200 and "geen stap in 3 dagen" in ok.text
    default = await web.get("/console/flows")
    assert default.status_code == 200 and "geen stap in 7 dagen" in default.text
    for bad in ("abc", "0", "366", "-2", "1e3", "٣", "7" * 500, "\x00"):
        r = await web.get("/console/flows", params={"days": bad})
        assert r.status_code == 400, bad
        assert "is geen geldig aantal dagen: geef een heel getal van 1 tot en met 365" in r.text, bad
        assert 'role="alert"' in r.text and "Traceback" not in r.text
        assert "geen stap in 7 dagen" in r.text  # the default list stands below the message
        live = await web.get("/console/flows/live", params={"days": bad}, headers={"HX-Request": "true"})
        assert live.status_code == 400 and "Traceback" not in live.text
    en = await web.get("/console/flows", params={"days": "x", "lang": "en"})
    assert "&#39;x&#39; is not a valid number of days" in en.text


async def test_the_activity_fragment_holds_the_chart_and_its_table(web: httpx.AsyncClient) -> None:
    await log_in(web)
    r = await web.get("/console/overview/activity", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert r.text.count('role="img"') == 2 and 'id="flow-counts"' in r.text
    assert "style=" not in r.text  # the CSP allows no inline style: colours come from classes


async def test_group_membership_forms(web: httpx.AsyncClient, db: Database) -> None:
    async with db.session() as s, s.begin():
        await seed_all(s)
    await log_in(web)
    page = await web.get("/console/tenants")
    assert page.status_code == 200 and 'id="groups-GM0307"' in page.text
    csrf = csrf_of(page.text)

    forged = await web.post(
        "/console/memberships", data={"csrf": "forged", "group": "zuid-holland", "tenant": "GM0307"}
    )
    assert forged.status_code == 403
    for fields, status, words in (
        ({"group": "Not A Group", "tenant": "GM0307"}, 400, "group: a group name"),
        ({"group": "zuid-holland", "tenant": "<b>"}, 400, "tenant: a tenant code"),
        ({"group": "nowhere", "tenant": "GM0307"}, 422, "no group nowhere"),
        ({"group": "zuid-holland", "tenant": "GM9999"}, 422, "unknown tenant(s): GM9999"),
    ):
        r = await web.post("/console/memberships", data={"csrf": csrf, **fields})
        assert r.status_code == status and words in r.text, (fields, r.text)

    r = await web.post(
        "/console/memberships", data={"csrf": csrf, "group": "zuid-holland", "tenant": "GM0307"}
    )
    assert r.status_code == 303
    assert (
        r.headers["location"]
        == "/console/tenants?membership=added&group=zuid-holland&tenant=GM0307#groups-GM0307"
    )
    shown = await web.get(r.headers["location"])
    assert "GM0307 is toegevoegd aan groep zuid-holland." in shown.text
    again = await web.post(
        "/console/memberships", data={"csrf": csrf, "group": "zuid-holland", "tenant": "GM0307"}
    )
    assert "membership=unchanged" in again.headers["location"]
    r = await web.post(
        "/console/memberships/remove", data={"csrf": csrf, "group": "zuid-holland", "tenant": "GM0307"}
    )
    assert r.status_code == 303 and "membership=removed" in r.headers["location"]
    async with db.session() as s:
        records = await s.scalars(select(AuditRecord).where(AuditRecord.subject_ref == "group:zuid-holland"))
        assert [(x.activity, x.actor) for x in records] == [
            ("add group member", "operator:web:anna"),
            ("remove group member", "operator:web:anna"),
        ]


async def test_the_tenants_page_shows_traffic_and_keys(web: httpx.AsyncClient, db: Database) -> None:
    async with db.session() as s, s.begin():
        await seed_all(s)
    await log_in(web)
    page = await web.get("/console/tenants")
    assert page.status_code == 200
    for header in ("Oudste bericht sinds", "Verkeer", "Sleutels"):
        assert f'scope="col">{header}</th>' in page.text, header
    assert "laatst verzonden: nooit" in page.text and "laatst ontvangen: nooit" in page.text
    english = await web.get("/console/tenants", params={"lang": "en"})
    assert "last sent: never" in english.text and "Oldest message since" in english.text
