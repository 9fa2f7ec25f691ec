"""The operator console in a real browser, against a running hub (router, broker, store) with
its API served over HTTP: log in, the overview, a dead letter made on purpose found in the list
and replayed (and routed), refusals (wrong password, forged CSRF, an API token), a keyboard-only
pass, axe-core on every page, and no page showing the demo's pupils."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aio_pika
import httpx
import pytest
from aiormq.exceptions import InvalidFrameError, ProbableAuthenticationError
from playwright.async_api import Page, expect
from sqlalchemy import select

from demo import story  # loads the demo's steps in their order (they import each other)
from hub.api.app import create_app
from hub.store.models import AuditRecord, DeadLetter
from tests.browser.conftest import axe_violations
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.api import served
from tests.utils.hubs import RunningHub

pytestmark = [pytest.mark.browser, pytest.mark.broker]

NAME, PASSWORD = "tessa", "een lang en geheim wachtwoord"
# The demo's pupils: their BSNs and family names must never appear on a console page.
PUPIL_MARKS = [
    *re.findall(r"^(\d{9}),[^,]*,([^,]+),", sys.modules["demo.notice_step"].REGISTER, flags=re.MULTILINE),
    (
        sys.modules["demo.transfer_step"].DOSSIER["pupil"]["bsn"],
        sys.modules["demo.transfer_step"].DOSSIER["pupil"]["family_name"],
    ),
]
assert story.STEPS and len(PUPIL_MARKS) == 3


@pytest.fixture(scope="module")
async def console_hub(tmp_session: Path) -> AsyncIterator[RunningHub]:
    label = f"console_{uuid.uuid4().hex[:6]}"
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{label}",
        database_url=await make_database_url("sqlite", label, tmp_session),
    )
    async with private_hub(settings, "sqlite", label) as hub:
        yield hub


def cli(hub: RunningHub, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INBEELD_AMQP_URL": hub.settings.amqp_url,
        "INBEELD_DATABASE_URL": hub.settings.database_url,
        "INBEELD_VHOST": hub.settings.vhost,
        "INBEELD_RABBITMQ_API_URL": hub.settings.rabbitmq_api_url,
    }
    return subprocess.run(
        [sys.executable, "-c", "from hub.cli import main; main()", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
async def console(console_hub: RunningHub) -> AsyncIterator[str]:
    """The console's address; its operator login was made with `inbeeld operator add`."""
    done = cli(console_hub, "operator", "add", NAME, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert "console login tessa added" in done.stdout
    again = cli(console_hub, "operator", "add", NAME, "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "already a login named tessa" in again.stderr
    async with served(create_app(console_hub.settings, console_hub.db)) as url:
        yield url + "/console"


async def assert_accessible_and_clean(page: Page) -> None:
    assert await axe_violations(page) == [], page.url
    html = await page.content()
    for bsn, family_name in PUPIL_MARKS:
        assert bsn not in html and family_name not in html, page.url


async def log_in(page: Page, console: str) -> None:
    await page.goto(console + "/login")
    await page.get_by_label("Naam").fill(NAME)
    await page.get_by_label("Wachtwoord").fill(PASSWORD)
    await page.get_by_role("button", name="Inloggen").click()
    await expect(page.get_by_role("heading", level=1, name="Overzicht")).to_be_visible()


async def file_dead_letter(hub: RunningHub) -> tuple[int, str]:
    """A dead letter as the router files one after the delivery limit: a signed event from
    GM0307 to GM0957 (carrying a demo BSN in its data) that was never routed."""
    amersfoort = await hub.connector("GM0307")
    event = amersfoort.event("nl.leerplicht.ping", {"text": f"bsn {PUPIL_MARKS[0][0]}"}, ["GM0957"])
    async with hub.db.session() as s, s.begin():
        row = DeadLetter(
            reason="delivery_limit",
            detail="the router failed on it 3 times",
            sender="GM0307",
            body=event.to_bytes(),
            body_size=len(event.to_bytes()),
            headers={"x-delivery-count": "3"},
        )
        s.add(row)
        await s.flush()
        return row.id, event.id


async def test_login_overview_and_a_dead_letter_replayed_and_routed(
    page: Page, console: str, console_hub: RunningHub
) -> None:
    csp_errors: list[str] = []
    page.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    await page.goto(console + "/")
    assert page.url == console + "/login"
    await expect(page.locator("html")).to_have_attribute("lang", "nl")
    await assert_accessible_and_clean(page)

    # A wrong password is refused with a message.
    await page.get_by_label("Naam").fill(NAME)
    await page.get_by_label("Wachtwoord").fill("dit is het niet, helaas")
    await page.get_by_role("button", name="Inloggen").click()
    await expect(page.get_by_role("alert")).to_contain_text("Naam of wachtwoord is onjuist.")
    await assert_accessible_and_clean(page)

    await page.get_by_label("Wachtwoord").fill(PASSWORD)
    await page.get_by_role("button", name="Inloggen").click()
    await expect(page.get_by_role("heading", level=1, name="Overzicht")).to_be_visible()
    await expect(page.locator('[data-figure="tenants"]')).to_have_text("5")
    await expect(page.locator('[data-health="broker"]')).to_have_text("In orde")
    await expect(page.locator('[data-health="database"]')).to_have_text("In orde")
    await assert_accessible_and_clean(page)
    waiting_before = int(await page.locator('[data-figure="dead-letters"]').inner_text())

    # A dead letter appears on the overview without a reload (htmx polls the figures).
    dl_id, event_id = await file_dead_letter(console_hub)
    await expect(page.locator('[data-figure="dead-letters"]')).to_have_text(
        str(waiting_before + 1), timeout=15_000
    )
    assert await page.evaluate("() => typeof window.htmx") == "object"

    # Found in the list, filtered by reason and sender.
    await page.get_by_role("link", name="Onbestelbare berichten").first.click()
    await expect(page.get_by_role("heading", level=1, name="Onbestelbare berichten")).to_be_visible()
    await assert_accessible_and_clean(page)
    await page.get_by_label("Reden").fill("delivery_limit")
    await page.get_by_label("Afzender (code)").fill("GM0307")
    await page.get_by_role("button", name="Toepassen").click()
    assert "reason=delivery_limit" in page.url and "tenant=GM0307" in page.url
    row = page.locator(f'[data-dead-letter="{dl_id}"]')
    await expect(row).to_contain_text("delivery_limit")
    await row.get_by_role("link", name=str(dl_id)).click()

    # The detail: metadata and headers, never the body.
    await expect(page.get_by_role("heading", level=1, name=f"Onbestelbaar bericht {dl_id}")).to_be_visible()
    await expect(page.get_by_text("x-delivery-count")).to_be_visible()
    assert event_id not in await page.content()
    await assert_accessible_and_clean(page)

    # Replay: the result on the page, the event routed to its recipient, the audit names Tessa.
    await page.get_by_role("button", name="Opnieuw aanbieden aan de router").click()
    await expect(page.locator("#replay-result")).to_have_text(
        f"Bericht {dl_id} is opnieuw aangeboden aan de router."
    )
    await console_hub.receive("GM0957", lambda e: e.id == event_id, timeout=20)
    await assert_accessible_and_clean(page)
    async with console_hub.db.session() as s:
        records = list(
            await s.scalars(select(AuditRecord).where(AuditRecord.actor == f"operator:web:{NAME}"))
        )
    assert ("replay dead letter", f"dead-letter:{dl_id}") in {(r.activity, r.subject_ref) for r in records}

    await page.get_by_role("link", name="Deelnemers").first.click()
    amersfoort = page.get_by_role("row", name=re.compile("GM0307"))
    await expect(amersfoort).to_contain_text("Actief")
    await expect(amersfoort.locator("[data-inbox-depth]")).to_have_text(re.compile(r"^\d+$"))
    await assert_accessible_and_clean(page)

    # Suspend a tenant: its connector is refused by the broker; reinstate it: let in again.
    await page.get_by_role("button", name="GM0518 schorsen").click()
    await expect(page.get_by_role("heading", level=1, name="GM0518 schorsen?")).to_be_visible()
    await assert_accessible_and_clean(page)
    conn = await aio_pika.connect(console_hub.tenant_url("GM0518"))  # not suspended yet
    await conn.close()
    await page.get_by_role("button", name="Ja, GM0518 schorsen").click()
    await expect(page.locator("#tenant-result")).to_contain_text("GM0518 is geschorst")
    await expect(page.get_by_role("row", name=re.compile("GM0518"))).to_contain_text("Geschorst")
    await assert_accessible_and_clean(page)
    with pytest.raises((InvalidFrameError, ProbableAuthenticationError)):
        await aio_pika.connect(console_hub.tenant_url("GM0518"))
    await page.get_by_role("button", name="GM0518 heractiveren").click()
    await expect(page.locator("#tenant-result")).to_contain_text("GM0518 is weer actief.")
    conn = await aio_pika.connect(console_hub.tenant_url("GM0518"))
    await conn.close()
    async with console_hub.db.session() as s:
        by_tessa = await s.scalars(
            select(AuditRecord).where(AuditRecord.subject_ref == "tenant:GM0518").order_by(AuditRecord.seq)
        )
        assert [(r.activity, r.actor) for r in by_tessa][-2:] == [
            ("suspend tenant", f"operator:web:{NAME}"),
            ("reinstate tenant", f"operator:web:{NAME}"),
        ]
    await assert_accessible_and_clean(page)

    await page.get_by_role("link", name="Auditlog").first.click()
    await page.get_by_label("Onderwerp (bericht-id of verwijzing)").fill(f"dead-letter:{dl_id}")
    await page.get_by_role("button", name="Zoeken").click()
    await expect(page.locator("#audit")).to_contain_text(f"operator:web:{NAME}")
    await page.get_by_role("button", name="Keten nu controleren").click()
    await expect(page.locator("#chain-result")).to_contain_text("Intact")
    await assert_accessible_and_clean(page)

    await page.goto(console + "/?lang=en")
    await expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await assert_accessible_and_clean(page)
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("status")).to_have_text("You have logged out.")
    assert csp_errors == []


async def test_forged_csrf_and_an_api_token_are_refused(
    page: Page, console: str, console_hub: RunningHub
) -> None:
    await log_in(page, console)
    dl_id, _ = await file_dead_letter(console_hub)
    await page.goto(f"{console}/dead-letters/{dl_id}")
    replay_form = page.locator('form[action$="/replay"]')
    await replay_form.locator('input[name="csrf"]').evaluate("(el) => { el.value = 'forged'; }")
    await page.get_by_role("button", name="Opnieuw aanbieden aan de router").click()
    await expect(page.get_by_role("alert")).to_contain_text(
        "Het formulier is verlopen of kwam niet van deze site"
    )
    await assert_accessible_and_clean(page)
    async with console_hub.db.session() as s:
        row = await s.get(DeadLetter, dl_id)
    assert row is not None and row.replayed_at is None

    token = await console_hub.token("tenant", "GM0307")
    context = await page.context.browser.new_context(  # type: ignore[union-attr]
        locale="nl-NL", extra_http_headers={"Authorization": f"Bearer {token}"}
    )
    stranger = await context.new_page()
    await stranger.goto(console + "/dead-letters")
    assert stranger.url == console + "/login"
    await expect(stranger.get_by_role("heading", level=1, name="Inloggen")).to_be_visible()
    await context.close()


async def test_keyboard_only_from_login_to_the_dead_letters(page: Page, console: str) -> None:
    async def focused() -> dict[str, str]:
        return await page.evaluate(
            """() => {
                const el = document.activeElement;
                const style = getComputedStyle(el);
                return {tag: el.tagName, id: el.id, text: el.textContent.trim(),
                        outline: style.outlineStyle, width: style.outlineWidth};
            }"""
        )

    async def tab_to(predicate, limit: int = 15) -> dict[str, str]:  # type: ignore[no-untyped-def]
        for _ in range(limit):
            await page.keyboard.press("Tab")
            now = await focused()
            assert now["outline"] != "none" and now["width"] != "0px", f"focus not visible on {now}"
            if predicate(now):
                return now
        raise AssertionError("never reached by Tab")

    await page.goto(console + "/login")
    first = await tab_to(lambda f: True, limit=1)
    assert first["text"] == "Naar de inhoud"  # the skip link comes first
    await tab_to(lambda f: f["id"] == "name")
    await page.keyboard.type(NAME)
    await page.keyboard.press("Tab")
    assert (await focused())["id"] == "password"
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1, name="Overzicht")).to_be_visible()
    await tab_to(lambda f: f["text"] == "Onbestelbare berichten")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1, name="Onbestelbare berichten")).to_be_visible()
    await tab_to(lambda f: f["id"] == "reason")


async def test_a_selection_of_dead_letters_replayed_at_once(
    page: Page, console: str, console_hub: RunningHub
) -> None:
    await log_in(page, console)
    filed = [await file_dead_letter(console_hub) for _ in range(2)]
    await page.goto(console + "/dead-letters?tenant=GM0307")
    for dl_id, _ in filed:
        await page.get_by_label(f"Bericht {dl_id} kiezen").check()
    await assert_accessible_and_clean(page)
    await page.get_by_role("button", name="Gekozen berichten opnieuw aanbieden").click()
    await expect(page.get_by_role("heading", level=1, name="Opnieuw aangeboden")).to_be_visible()
    for dl_id, _ in filed:
        await expect(page.locator(f'[data-replayed="{dl_id}"]')).to_contain_text(
            "Opnieuw aangeboden aan de router"
        )
    await assert_accessible_and_clean(page)
    wanted = {event_id for _, event_id in filed}
    await console_hub.receive("GM0957", lambda e: e.id in wanted, count=2, timeout=20)


async def test_every_dead_letter_since_a_day_replayed_at_once(
    page: Page, console: str, console_hub: RunningHub
) -> None:
    await log_in(page, console)
    filed = [await file_dead_letter(console_hub) for _ in range(2)]
    today = datetime.now(ZoneInfo("Europe/Amsterdam")).date().isoformat()
    await page.goto(console + "/dead-letters")
    await page.get_by_label("Ontvangen op of na (datum)").fill(today)
    await page.get_by_role("button", name="Toepassen").click()
    assert f"since={today}" in page.url
    await page.get_by_role(
        "button", name="Alle getoonde, nog niet aangeboden berichten opnieuw aanbieden"
    ).click()
    for dl_id, _ in filed:
        await expect(page.locator(f'[data-replayed="{dl_id}"]')).to_contain_text(
            "Opnieuw aangeboden aan de router"
        )
    wanted = {event_id for _, event_id in filed}
    await console_hub.receive("GM0957", lambda e: e.id in wanted, count=2, timeout=20)
    async with console_hub.db.session() as s:
        left = await s.scalars(select(DeadLetter).where(DeadLetter.replayed_at.is_(None)))
        assert list(left) == []  # everything shown (all of today's) was replayed


async def test_a_dead_letter_discarded_with_a_reason(
    page: Page, console: str, console_hub: RunningHub
) -> None:
    await log_in(page, console)
    dl_id, _ = await file_dead_letter(console_hub)
    await page.goto(console + f"/dead-letters/{dl_id}")
    await assert_accessible_and_clean(page)
    reason = page.get_by_label("Reden (3 tot 200 tekens, geen persoonsgegevens)")
    await reason.fill("pupil 111222333")  # a BSN: refused with a message, nothing changes
    await page.get_by_role("button", name="Weggooien").click()
    await expect(page.locator("#discard-result")).to_contain_text("Weggooien lukte niet")
    assert "111222333" not in await page.locator("#discard-result").inner_text()
    await reason.fill("De afzender heeft het opnieuw gestuurd")
    await page.get_by_role("button", name="Weggooien").click()
    await expect(page.locator("#discard-result")).to_contain_text(f"Bericht {dl_id} is weggegooid.")
    await expect(page.get_by_text("De afzender heeft het opnieuw gestuurd")).to_be_visible()
    await expect(page.get_by_role("button", name="Weggooien")).to_have_count(0)  # nothing left to do
    await assert_accessible_and_clean(page)
    async with console_hub.db.session() as s:
        row = await s.get(DeadLetter, dl_id)
        assert row is not None and row.discarded_at is not None and row.body == b""
        records = (
            await s.scalars(select(AuditRecord).where(AuditRecord.subject_ref == f"dead-letter:{dl_id}"))
        ).all()
    assert [(r.activity, r.actor) for r in records] == [("discard dead letter", "operator:web:tessa")]


async def test_a_tenant_token_and_a_new_broker_password_are_shown_once(
    page: Page, console: str, console_hub: RunningHub
) -> None:
    await log_in(page, console)
    await page.goto(console + "/tenants")
    await page.get_by_role("button", name="API-token maken voor GM0599").click()
    await expect(page.get_by_role("heading", level=1, name="Eenmalig getoond")).to_be_visible()
    token = (await page.locator("#secret").inner_text()).strip()
    await assert_accessible_and_clean(page)
    async with httpx.AsyncClient(base_url=console.removesuffix("/console")) as client:
        me = await client.get("/tenants/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["code"] == "GM0599", me.text

    old = console_hub.creds["GM0599"]
    await page.goto(console + "/tenants")
    await page.get_by_role("button", name="Brokerwachtwoord vernieuwen voor GM0599").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Brokerwachtwoord van GM0599 vernieuwen?")
    await assert_accessible_and_clean(page)
    await page.get_by_role("button", name="Ja, vernieuwen").click()
    await expect(page.get_by_role("heading", level=1, name="Eenmalig getoond")).to_be_visible()
    password = (await page.locator("#secret").inner_text()).strip()
    assert password and password != old.password
    await assert_accessible_and_clean(page)
    renewed = await aio_pika.connect(console_hub.settings.amqp_url_for(user=old.username, password=password))
    await renewed.close()
    with pytest.raises((InvalidFrameError, ProbableAuthenticationError)):
        await aio_pika.connect(console_hub.tenant_url("GM0599"))
    async with console_hub.db.session() as s:
        records = (
            await s.scalars(select(AuditRecord).where(AuditRecord.actor == "operator:web:tessa"))
        ).all()
    done = {r.activity for r in records}
    assert {"create tenant token", "rotate broker password"} <= done
    assert not [r for r in records if token in str(r.subject_ref) or password in str(r.subject_ref)]
