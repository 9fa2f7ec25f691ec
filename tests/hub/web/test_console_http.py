"""The console over HTTP, without a browser: headers, login and its throttling, CSRF, the idle
timeout, bad input answered with a page (never a traceback), the language, the audit trail.

Uses a migrated store (SQLite and PostgreSQL) and no broker: these pages only read the store."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select, update

from hub import audit, auth, operator_actions, operator_logins, registry
from hub.api.app import create_app
from hub.operator_actions import Actor
from hub.seed import seed_all
from hub.store.db import Database
from hub.store.models import AuditRecord, DeadLetter, LedgerEvent
from hub.web import i18n
from tests.conftest import base_settings
from webui.security import CSP
from webui.sessions import COOKIE

PASSWORD = "correct horse battery staple"
SECRET = "s" * 40


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    async with database.session() as s, s.begin():
        await operator_actions.add_login(s, Actor.cli(), "anna", PASSWORD)
    yield database
    await database.close()


@pytest.fixture
async def web(db: Database, database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = base_settings(database_url=database_url, console_secret=SECRET, console_idle_minutes=5)
    app = create_app(settings, db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hub", follow_redirects=False
    ) as client:
        yield client


class TenMinutesAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 600


def form(fields: list[tuple[str, str]]) -> dict[str, Any]:
    """A urlencoded body with repeated fields (httpx's `data=` takes a dict only)."""
    return {
        "content": urlencode(fields),
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def log_in(web: httpx.AsyncClient, name: str = "anna", password: str = PASSWORD) -> httpx.Response:
    page = await web.get("/console/login")
    return await web.post(
        "/console/login", data={"csrf": csrf_of(page.text), "name": name, "password": password}
    )


async def test_pages_need_a_login_and_carry_the_security_headers(web: httpx.AsyncClient) -> None:
    for path in ("/console/", "/console/dead-letters", "/console/tenants", "/console/dead-letters/1"):
        r = await web.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    r = await web.get("/console/login")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == CSP
    assert "default-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is added (next test)
    assert "<style" not in r.text and "style=" not in r.text and "<script>" not in r.text
    css = await web.get("/console/static/vendor/utrecht-component-library.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_the_cookie_is_secure_over_tls(db: Database, database_url: str) -> None:
    settings = base_settings(database_url=database_url, console_secret=SECRET)
    transport = httpx.ASGITransport(app=create_app(settings, db))
    async with httpx.AsyncClient(transport=transport, base_url="https://hub") as client:
        r = await client.get("/console/login")
    assert "; Secure" in r.headers["set-cookie"]


async def test_login_logout_and_the_audit_trail(web: httpx.AsyncClient, db: Database) -> None:
    r = await log_in(web)
    assert r.status_code == 303 and r.headers["location"] == "/console/"
    overview = await web.get("/console/")
    assert overview.status_code == 200
    assert "Ingelogd als anna" in overview.text and '<html lang="nl"' in overview.text
    stats = await web.get("/console/overview/stats", headers={"HX-Request": "true"})
    assert stats.status_code == 200 and "<html" not in stats.text and 'data-figure="tenants"' in stats.text
    assert "set-cookie" not in stats.headers  # polling does not keep an idle session alive
    assert "set-cookie" in overview.headers  # a page a person asks for does
    r = await web.post("/console/logout", data={"csrf": csrf_of(overview.text)})
    assert r.status_code == 303 and r.headers["location"] == "/console/login?bye=1"
    assert (await web.get("/console/")).status_code == 303
    async with db.session() as s:
        rows = list(await s.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
    trail = [(r.activity, r.actor, r.outcome) for r in rows]
    assert ("add console login", Actor.cli().ref, "added") in trail
    assert ("console login", "operator:web:anna", "logged in") in trail
    assert ("console logout", "operator:web:anna", "logged out") in trail


async def test_wrong_password_is_refused_and_repeated_failures_lock_the_login(
    web: httpx.AsyncClient, db: Database
) -> None:
    r = await log_in(web, password="wrong password!")
    assert r.status_code == 401 and "Naam of wachtwoord is onjuist." in r.text
    assert "Traceback" not in r.text
    for _ in range(operator_logins.MAX_FAILURES - 1):
        r = await log_in(web, password="wrong password!")
    assert r.status_code == 401 and "Te veel mislukte pogingen" in r.text
    r = await log_in(web)  # the right password, but the login is locked now
    assert r.status_code == 401 and "Te veel mislukte pogingen" in r.text
    assert (await web.get("/console/")).status_code == 303
    for name in ("nobody", "anna\x00", "x" * 100):
        unknown = await log_in(web, name=name)
        assert unknown.status_code == 401 and "Naam of wachtwoord is onjuist." in unknown.text
    async with db.session() as s:
        outcomes = [r.outcome for r in await s.scalars(select(AuditRecord)) if r.activity == "console login"]
    assert outcomes.count("refused") >= operator_logins.MAX_FAILURES and "locked" in outcomes


async def test_a_form_without_the_sessions_csrf_token_is_refused(web: httpx.AsyncClient) -> None:
    page = await web.get("/console/login")
    forged = await web.post("/console/login", data={"csrf": "forged", "name": "anna", "password": PASSWORD})
    assert forged.status_code == 403
    assert "Het formulier is verlopen of kwam niet van deze site" in forged.text
    missing = await web.post("/console/login", data={"name": "anna", "password": PASSWORD})
    assert missing.status_code == 403
    # a token from another session (another browser) does not count either
    async with httpx.AsyncClient(transport=web._transport, base_url="http://hub") as other:
        theirs = csrf_of((await other.get("/console/login")).text)
    assert theirs != csrf_of(page.text)
    r = await web.post("/console/login", data={"csrf": theirs, "name": "anna", "password": PASSWORD})
    assert r.status_code == 403


async def test_an_idle_session_expires_and_a_forged_cookie_is_no_session(web: httpx.AsyncClient) -> None:
    await log_in(web)
    assert (await web.get("/console/")).status_code == 200
    # A cookie signed 10 minutes ago (the idle limit is 5), as a browser would still send it.
    old = URLSafeTimedSerializer(SECRET, salt="inbeeld.web.session", signer=TenMinutesAgo).dumps(
        {"csrf": "x", "user": "anna"}
    )
    web.cookies.clear()
    r = await web.get("/console/", headers={"Cookie": f"{COOKIE}={old}"})
    assert r.status_code == 303 and r.headers["location"] == "/console/login?expired=1"
    assert "Uw sessie is verlopen" in (await web.get(r.headers["location"])).text
    polled = await web.get(
        "/console/overview/stats", headers={"HX-Request": "true", "Cookie": f"{COOKIE}={old}"}
    )
    assert polled.headers.get("hx-redirect", "").startswith("/console/login")
    forged = URLSafeTimedSerializer("another key of forty characters........", salt="inbeeld.web.session")
    web.cookies.clear()
    cookie = forged.dumps({"csrf": "x", "user": "anna"})
    assert (await web.get("/console/", headers={"Cookie": f"{COOKIE}={cookie}"})).status_code == 303


async def test_an_api_token_does_not_open_the_console(web: httpx.AsyncClient, db: Database) -> None:
    async with db.session() as s, s.begin():
        _, operator_token = await auth.issue(s, "operator", None)
    r = await web.get("/console/", headers={"Authorization": f"Bearer {operator_token}"})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"


async def test_bad_input_gets_a_clear_page(web: httpx.AsyncClient) -> None:
    await log_in(web)
    for path, status in [
        ("/console/dead-letters/abc", 404),
        ("/console/dead-letters/99999999999999999999", 404),
        ("/console/dead-letters/12345", 404),
        ("/console/no-such-page", 404),
        ("/console/dead-letters?reason=%3Cscript%3E", 400),
        ("/console/dead-letters?tenant=" + "x" * 40, 400),
        ("/console/dead-letters?reason=" + "a" * 3000, 414),
    ]:
        r = await web.get(path)
        assert r.status_code == status, path
        assert "Traceback" not in r.text and "<script>" not in r.text, path
        assert r.headers["content-security-policy"] == CSP
    r = await web.post("/console/dead-letters/1/replay", content=b"csrf=" + b"a" * 20000)
    assert r.status_code == 400
    csrf = csrf_of((await web.get("/console/tenants")).text)
    for path in ("/console/tenants/GM0307/delete", "/console/tenants/not%20a%20code/suspend"):
        r = await web.post(path, data={"csrf": csrf})
        assert r.status_code == 404 and "Deze pagina bestaat niet." in r.text, path
    r = await web.post("/console/tenants/GM0307/suspend", data={"csrf": "forged"})
    assert r.status_code == 403


async def test_dead_letters_list_filter_and_detail_show_metadata_only(
    web: httpx.AsyncClient, db: Database
) -> None:
    async with db.session() as s, s.begin():
        for reason, sender in [("delivery_limit", "GM0307"), ("malformed", "GM0957"), ("malformed", None)]:
            s.add(
                DeadLetter(
                    reason=reason,
                    detail="test",
                    sender=sender,
                    body=b"SECRET BODY" if sender else b"",
                    body_size=11,
                    headers={"x-test": "header value"},
                )
            )
    await log_in(web)
    everything = await web.get("/console/dead-letters")
    assert everything.text.count("data-dead-letter=") == 3
    malformed = await web.get("/console/dead-letters", params={"reason": "malformed"})
    assert malformed.text.count("data-dead-letter=") == 2
    theirs = await web.get("/console/dead-letters", params={"reason": "malformed", "tenant": "GM0957"})
    assert theirs.text.count("data-dead-letter=") == 1
    today = datetime.now(i18n.ZONE).date()
    for day, count in [(today, 3), (today + timedelta(days=1), 0), (today - timedelta(days=1), 3)]:
        r = await web.get("/console/dead-letters", params={"since": day.isoformat()})
        assert r.status_code == 200 and r.text.count("data-dead-letter=") == count, day
    bad_date = await web.get("/console/dead-letters", params={"since": "2026-13-45"})
    assert bad_date.status_code == 400 and "YYYY-MM-DD" in bad_date.text
    dl_id = re.search(r'data-dead-letter="(\d+)"', theirs.text).group(1)  # type: ignore[union-attr]
    detail = await web.get(f"/console/dead-letters/{dl_id}")
    assert detail.status_code == 200
    assert "x-test" in detail.text and "header value" in detail.text and "malformed" in detail.text
    assert "SECRET BODY" not in detail.text
    # Replaying one without a known sender is refused by hub.replay (before any broker is needed).
    unknown = re.findall(r'data-dead-letter="(\d+)"', malformed.text)
    no_sender = next(i for i in unknown if i != dl_id)
    page = await web.get(f"/console/dead-letters/{no_sender}")
    r = await web.post(f"/console/dead-letters/{no_sender}/replay", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 409 and "Opnieuw aanbieden lukte niet" in r.text and "no known sender" in r.text

    # A selection: each is answered on its own (here refused: no sender, no such dead letter).
    csrf = csrf_of(everything.text)
    r = await web.post(
        "/console/dead-letters/replay",
        **form([("csrf", csrf), ("id", no_sender), ("id", "999999"), ("id", "x")]),
    )
    assert r.status_code == 200
    assert re.search(rf'data-replayed="{no_sender}">.*?no known sender', r.text, flags=re.S)
    assert re.search(r'data-replayed="999999">.*?no dead letter 999999', r.text, flags=re.S)
    nothing = await web.post("/console/dead-letters/replay", data={"csrf": csrf})
    assert nothing.status_code == 400 and "no dead letter selected" in nothing.text
    too_many = await web.post("/console/dead-letters/replay", **form([("csrf", csrf)] + [("id", "1")] * 300))
    assert too_many.status_code == 400 and "too many form fields" in too_many.text


async def test_english_on_request_and_remembered(web: httpx.AsyncClient) -> None:
    r = await web.get("/console/login", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en"' in r.text and "Log in" in r.text
    r = await web.get("/console/login?lang=nl", headers={"Accept-Language": "en"})
    assert '<html lang="nl"' in r.text and "Inloggen" in r.text
    r = await web.get("/console/login", headers={"Accept-Language": "en"})  # the cookie wins
    assert '<html lang="nl"' in r.text


async def test_login_names_and_passwords_are_checked(db: Database) -> None:
    async with db.session() as s, s.begin():
        with pytest.raises(operator_logins.BadLogin):
            await operator_logins.add(s, "Bad Name", PASSWORD)
        with pytest.raises(operator_logins.BadLogin):
            await operator_logins.add(s, "bob", "short")
        with pytest.raises(operator_logins.LoginExists):
            await operator_logins.add(s, "anna", PASSWORD)
        stored = await s.get(operator_logins.OperatorLogin, "anna")
        assert stored is not None and stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash


async def test_audit_search_and_verifying_the_chain(web: httpx.AsyncClient, db: Database) -> None:
    await log_in(web)
    page = await web.get("/console/audit")
    assert page.status_code == 200 and "nog niet gecontroleerd" in page.text
    everything = len(re.findall(r"data-audit=", page.text))
    assert everything >= 2  # the login added, anna logged in
    logins = await web.get("/console/audit", params={"activity": "console login"})
    assert len(re.findall(r"data-audit=", logins.text)) == 1 and "operator:web:anna" in logins.text
    about = await web.get("/console/audit", params={"subject": "login:anna"})
    assert len(re.findall(r"data-audit=", about.text)) == everything
    assert "Geen records gevonden." in (await web.get("/console/audit", params={"tenant": "GM0307"})).text
    odd = await web.get("/console/audit", params={"subject": "<script>"})
    assert odd.status_code == 200 and "<script>" not in odd.text and "&lt;script&gt;" in odd.text
    for params in ({"subject": "x" * 101}, {"activity": "drop table;"}, {"tenant": "nope!"}):
        assert (await web.get("/console/audit", params=params)).status_code == 400, params

    r = await web.post("/console/audit/verify", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303
    verified = await web.get(r.headers["location"])
    assert re.search(r"Intact: \d+ records, gecontroleerd op", verified.text)
    overview = await web.get("/console/")
    assert re.search(r"Intact: \d+ records, gecontroleerd op", overview.text)
    async with db.session() as s:
        rows = [r for r in await s.scalars(select(AuditRecord)) if r.activity == "verify audit chain"]
    assert [(r.actor, r.outcome) for r in rows] == [("operator:web:anna", "intact")]
    forged = await web.post("/console/audit/verify", data={"csrf": "forged"})
    assert forged.status_code == 403


async def test_a_broken_chain_is_named_on_the_audit_page(web: httpx.AsyncClient, db: Database) -> None:
    async with db.session() as s, s.begin():
        for outcome in ("routed", "routed", "rejected:unknown_recipient"):
            await audit.append(s, activity="route ping", actor="hub-router", outcome=outcome, sender="GM0518")
        second = (
            await s.scalars(
                select(AuditRecord.seq).where(AuditRecord.chain == "tenant:GM0518").order_by(AuditRecord.seq)
            )
        ).all()[1]
        await s.execute(update(AuditRecord).where(AuditRecord.seq == second).values(outcome="rejected:x"))
    await log_in(web)
    page = await web.get("/console/audit")
    r = await web.post("/console/audit/verify", data={"csrf": csrf_of(page.text)})
    verified = await web.get(r.headers["location"])
    assert f"GEBROKEN: keten tenant:GM0518, bij record {second} (" in verified.text
    async with db.session() as s:  # the login's records, on the hub's chain, still verify
        assert [c.key for c in (await audit.verify(s)).broken] == ["tenant:GM0518"]


async def test_overview_counts_events_by_outcome_and_rejections_by_reason(
    web: httpx.AsyncClient, db: Database
) -> None:
    now = datetime.now(UTC)
    rows = [
        ("routed", None, now - timedelta(minutes=5)),
        ("routed", None, now - timedelta(hours=3)),
        ("rejected", "source_mismatch", now - timedelta(minutes=1)),
        ("rejected", "source_mismatch", now - timedelta(hours=2)),
        ("rejected", "rate_limited", now - timedelta(hours=5)),
        ("rejected", "too_large", now - timedelta(days=2)),  # outside the day
    ]
    async with db.session() as s, s.begin():
        for i, (status, reason, at) in enumerate(rows):
            s.add(
                LedgerEvent(
                    event_id=f"e{i}",
                    source="urn:test",
                    type="nl.leerplicht.ping",
                    sender="GM0307",
                    status=status,
                    reason=reason,
                    received_at=at,
                )
            )
    await log_in(web)
    page = (await web.get("/console/")).text
    cells = re.findall(r'numeric-data">(\d+)</td>', page)
    # routed, rejected, received for the hour; then for the day; then the reasons
    assert cells[:6] == ["1", "1", "0", "2", "3", "0"]
    reasons = re.findall(
        r'scope="row">([a-z_]+)</th>\s*<td class="[^"]*numeric-data">(\d+)',
        page,
    )
    assert reasons == [("source_mismatch", "2"), ("rate_limited", "1")]
    assert re.search(r'data-health="database">In orde<', page)


async def test_a_failure_inside_the_hub_is_a_clear_page_not_a_traceback(tmp_path) -> None:
    # A store that was never migrated: every query fails (as a bug or a broken database would).
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    db = Database(url)
    app = create_app(base_settings(database_url=url, console_secret=SECRET), db)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            page = await client.get("/console/login")
            r = await client.post(
                "/console/login", data={"csrf": csrf_of(page.text), "name": "anna", "password": PASSWORD}
            )
    finally:
        await db.close()
    assert r.status_code == 500
    assert "De hub kon deze aanvraag niet afhandelen" in r.text
    assert "Traceback" not in r.text and "sqlite" not in r.text.lower() and "no such table" not in r.text
    assert r.headers["content-security-policy"] == CSP


async def test_suspending_a_tenant_asks_first(web: httpx.AsyncClient, db: Database) -> None:
    async with db.session() as s, s.begin():
        await seed_all(s)
    await log_in(web)
    csrf = csrf_of((await web.get("/console/tenants")).text)
    r = await web.post("/console/tenants/GM0307/suspend", data={"csrf": csrf})
    assert r.status_code == 200 and "GM0307 schorsen?" in r.text and "Gemeente Amersfoort" in r.text
    assert 'name="confirm" value="yes"' in r.text
    async with db.session() as s:
        assert (await registry.get_tenant(s, "GM0307")).active  # nothing happened yet
    unknown = await web.post("/console/tenants/GM9999/suspend", data={"csrf": csrf})
    assert unknown.status_code == 404
