"""The console's overview activity, flows page and group membership in a real browser, against
a running hub with traffic: pings routed and refused, a sealed transfer offered (its dossier
carries a demo pupil) that then stood still, a dead letter holding a BSN. One journey per page,
axe-core on every page visited, and every GET page of the console scanned for the pupils."""

from __future__ import annotations

import os
import re
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select, update
from starlette.routing import Mount, Route

from connectors import Connector
from connectors import transfers as sdk
from connectors.keystore import Keystore
from connectors.sealing import Sealer
from hub.api.app import create_app
from hub.store.models import AuditRecord, Transfer, TransferStep, utcnow
from tests.browser import test_console
from tests.browser.test_console import (
    NAME,
    PUPIL_MARKS,
    assert_accessible_and_clean,
    file_dead_letter,
    log_in,
)
from tests.e2e.conftest import make_directory
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys

pytestmark = [pytest.mark.browser, pytest.mark.broker]

PING = "nl.leerplicht.ping"
# The running hub (with the console's login) and the console's address, as test_console makes them:
# a hub of this module's own.
console_hub = test_console.console_hub
console = test_console.console
DOSSIER = sys.modules["demo.transfer_step"].DOSSIER


async def _count(page: Page, flow: str, cell: str) -> int:
    row = page.locator(f'#flow-counts tr[data-flow="{flow}"]')
    if await row.count() == 0:
        return 0
    return int(await row.locator(f'[data-count="{cell}"]').inner_text())


async def test_overview_charts_the_traffic_made_and_shows_routers_and_the_last_verification(
    page: Page, console: str, console_hub: RunningHub
) -> None:
    await log_in(page, console)
    chart = page.get_by_role("img", name="Berichten per stroom, afgelopen uur")
    await expect(chart).to_be_visible()
    # The management API's consumer count lags its queues by a statistics interval (5 s); the
    # overview refreshes itself every 10 s, so the figure catches up on the page.
    await expect(page.locator('[data-figure="routers"]')).to_have_text("1", timeout=30_000)
    await assert_accessible_and_clean(page)
    routed_before = await _count(page, "ping", "hour-routed")
    day_before = await _count(page, "ping", "day-routed")

    # Traffic: three pings routed, one refused (an unknown recipient).
    amersfoort = await console_hub.connector("GM0307")
    sent = [await amersfoort.send(PING, {"text": f"hallo {i}"}, ["GM0957"]) for i in range(3)]
    await console_hub.receive("GM0957", lambda e: e.id in {s.id for s in sent}, count=3, timeout=20)
    refused = await amersfoort.send(PING, {"text": "niemand"}, ["GM9999"])
    await console_hub.receive(
        "GM0307", lambda e: e.type.endswith("hub.rejected") and e.data["event_id"] == refused.id, timeout=20
    )

    # Shown without a reload (htmx polls), in the table and the chart alike.
    row = page.locator('#flow-counts tr[data-flow="ping"]')
    await expect(row.locator('[data-count="hour-routed"]')).to_have_text(
        str(routed_before + 3), timeout=20_000
    )
    await expect(row.locator('[data-count="day-routed"]')).to_have_text(str(day_before + 3))
    bar = page.locator('#chart-hour g[data-flow="ping"] rect[data-outcome="routed"]')
    await expect(bar).to_have_attribute("data-count", str(routed_before + 3))
    await expect(page.locator("#chart-hour-desc")).to_contain_text(f"ping: {routed_before + 3} doorgestuurd")
    await expect(page.locator("#rejected")).to_contain_text("unknown_recipient")

    # A verification through the API is the one the overview shows as the last.
    token = await console_hub.token("operator")
    async with httpx.AsyncClient(base_url=console.removesuffix("/console")) as client:
        r = await client.get("/audit/verify", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["intact"] is True, r.text
    async with console_hub.db.session() as s:
        last = await s.scalar(
            select(AuditRecord)
            .where(AuditRecord.activity == "verify audit chain")
            .order_by(AuditRecord.seq.desc())
        )
    assert last is not None and last.actor.startswith("operator:token:")
    await expect(page.locator("#last-verification")).to_contain_text("Intact, op ", timeout=20_000)
    await expect(page.locator("#last-verification")).to_contain_text(last.actor)
    await assert_accessible_and_clean(page)

    await page.goto(console + "/?lang=en")
    await expect(page.get_by_role("img", name="Events per flow, last 24 hours")).to_be_visible()
    await assert_accessible_and_clean(page)


async def _offer_transfer(console_hub: RunningHub, tmp_path: Path) -> str:
    """A sealed transfer offered by GM0518 to GM0599 through the hub, the demo's pupil inside."""
    app = create_app(console_hub.settings, console_hub.db)
    sealers = {}
    for code in ("GM0518", "GM0599"):
        ks = Keystore.create(tmp_path / f"{code}.keystore", kek=os.urandom(32))
        sealers[code] = Sealer(ks, await make_directory(console_hub, app, code), code)
        await install_keys(console_hub, code, ks.public_jwks())
    transfer_id = f"tr-GM0518-{uuid.uuid4().hex[:16]}"
    den_haag = Connector(
        "GM0518",
        console_hub.tenant_url("GM0518"),
        inbox_name=console_hub.inbox("GM0518"),
        system="test",
        sealer=sealers["GM0518"],
    )
    async with den_haag:
        offered = await sdk.offer(den_haag, "GM0599", {**DOSSIER, "transfer_id": transfer_id})
    await console_hub.receive("GM0599", lambda e: e.id == offered.id, timeout=20)
    return transfer_id


async def _stand_still(console_hub: RunningHub, transfer_id: str, days: int) -> None:
    """Move the transfer's last step `days` days back: nobody answered it since."""
    back = timedelta(days=days)
    async with console_hub.db.session() as s, s.begin():
        t = await s.get(Transfer, transfer_id)
        assert t is not None
        await s.execute(
            update(Transfer)
            .where(Transfer.transfer_id == transfer_id)
            .values(offered_at=t.offered_at - back, updated_at=t.updated_at - back)
        )
        await s.execute(
            update(TransferStep).where(TransferStep.transfer_id == transfer_id).values(at=utcnow() - back)
        )


async def test_flows_page_lists_a_stuck_transfer_with_its_timeline(
    page: Page, console: str, console_hub: RunningHub, tmp_path: Path
) -> None:
    transfer_id = await _offer_transfer(console_hub, tmp_path)
    await log_in(page, console)
    await page.get_by_role("link", name="Stromen").first.click()
    await expect(page.get_by_role("heading", level=1, name="Stromen")).to_be_visible()
    await expect(page.locator('[data-transfer-state="offered"]')).to_have_text(re.compile(r"^[1-9]\d*$"))
    await expect(page.locator(f'[data-transfer="{transfer_id}"]')).to_have_count(0)  # it just moved
    await assert_accessible_and_clean(page)

    # Ten days without a step: listed as stuck without a reload, with its timeline.
    await _stand_still(console_hub, transfer_id, 10)
    stuck = page.locator(f'[data-transfer="{transfer_id}"]')
    await expect(stuck).to_be_visible(timeout=20_000)
    await expect(stuck).to_contain_text("GM0518 naar GM0599")
    await expect(stuck.locator("[data-timeline] li")).to_have_text(
        [re.compile(r": aangeboden, door GM0518$")]
    )
    await assert_accessible_and_clean(page)

    # N days is the operator's: thirty leaves it out.
    await page.get_by_label("Vastgelopen: geen stap in zoveel dagen").fill("30")
    await page.get_by_role("button", name="Tonen").click()
    await expect(
        page.get_by_role("heading", level=2, name=re.compile("geen stap in 30 dagen"))
    ).to_be_visible()
    await expect(page.locator(f'[data-transfer="{transfer_id}"]')).to_have_count(0)

    # A bad N is a message on the page (and the default list), never a traceback.
    for bad in ("abc", "0", "366", "-1", "7.5"):
        await page.get_by_label("Vastgelopen: geen stap in zoveel dagen").fill(bad)
        await page.get_by_role("button", name="Tonen").click()
        await expect(page.get_by_role("alert")).to_contain_text(f"'{bad}' is geen geldig aantal dagen")
        await expect(page.locator(f'[data-transfer="{transfer_id}"]')).to_be_visible()
    await assert_accessible_and_clean(page)
    assert "Traceback" not in await page.content()

    await page.goto(console + "/flows?lang=en&days=9")
    await expect(
        page.get_by_role("heading", level=2, name="Stuck transfers (no step for 9 days)")
    ).to_be_visible()
    await expect(page.locator(f'[data-transfer="{transfer_id}"]')).to_contain_text("offered, by GM0518")
    await assert_accessible_and_clean(page)


async def test_a_tenant_added_to_a_group_and_removed_again_is_shown_and_audited(
    page: Page, console: str, console_hub: RunningHub
) -> None:
    await log_in(page, console)
    await page.get_by_role("link", name="Deelnemers").first.click()
    groups = page.locator("#groups-GM0307")
    await expect(groups.locator('[data-group="zuid-holland"]')).to_have_count(0)
    await page.get_by_label("Groep voor GM0307").select_option("zuid-holland")
    await page.get_by_role("button", name="GM0307 aan de gekozen groep toevoegen").click()
    await expect(page.locator("#membership-result")).to_have_text(
        "GM0307 is toegevoegd aan groep zuid-holland."
    )
    await expect(groups.locator('[data-group="zuid-holland"]')).to_be_visible()
    await assert_accessible_and_clean(page)

    # The group reaches its new member: a ping to the group arrives at Amersfoort.
    rotterdam = await console_hub.connector("GM0599")
    sent = await rotterdam.send(PING, {"text": "aan de regio"}, ["group:zuid-holland"])
    await console_hub.receive("GM0307", lambda e: e.id == sent.id, timeout=20)

    await page.get_by_role("button", name="GM0307 uit groep zuid-holland verwijderen").click()
    await expect(page.locator("#membership-result")).to_have_text(
        "GM0307 is verwijderd uit groep zuid-holland."
    )
    await expect(groups.locator('[data-group="zuid-holland"]')).to_have_count(0)
    await assert_accessible_and_clean(page)

    # Both in the audit chain under the operator's name, and found on the audit page.
    async with console_hub.db.session() as s:
        records = await s.scalars(
            select(AuditRecord)
            .where(AuditRecord.subject_ref == "group:zuid-holland")
            .order_by(AuditRecord.seq)
        )
        done = [(r.activity, r.actor, r.recipients) for r in records]
    assert done[-2:] == [
        ("add group member", f"operator:web:{NAME}", ["GM0307"]),
        ("remove group member", f"operator:web:{NAME}", ["GM0307"]),
    ]
    await page.get_by_role("link", name="Auditlog").first.click()
    await page.get_by_label("Onderwerp (bericht-id of verwijzing)").fill("group:zuid-holland")
    await page.get_by_role("button", name="Zoeken").click()
    await expect(page.locator("#audit")).to_contain_text("remove group member")
    await expect(page.locator("#audit")).to_contain_text("add group member")


async def _console_get_paths(console_hub: RunningHub) -> list[str]:
    """Every GET route of the console, as the app mounts it (static files aside)."""
    app = create_app(console_hub.settings, console_hub.db)
    [mount] = [r for r in app.routes if isinstance(r, Mount) and r.path == "/console"]
    return [
        r.path for r in mount.routes if isinstance(r, Route) and r.methods is not None and "GET" in r.methods
    ]


async def test_no_console_page_shows_a_pupil(
    page: Page, console: str, console_hub: RunningHub, tmp_path: Path
) -> None:
    # Traffic that carries the pupils: a sealed dossier, a dead letter with a BSN in its body.
    transfer_id = await _offer_transfer(console_hub, tmp_path)
    await _stand_still(console_hub, transfer_id, 30)
    dl_id, _ = await file_dead_letter(console_hub)
    await log_in(page, console)

    paths = await _console_get_paths(console_hub)
    assert {"/", "/overview/activity", "/flows", "/flows/live", "/tenants", "/audit"} <= set(paths), paths
    visited = []
    for path in paths:
        url = console + path.replace("{dl_id}", str(dl_id))
        for query in ("", "?lang=en"):
            response = await page.goto(url + query)
            assert response is not None and response.status == 200, (url, response and response.status)
            html = await page.content()
            for bsn, family_name in PUPIL_MARKS:
                assert bsn not in html and family_name not in html, url
            assert DOSSIER["pupil"]["given_names"] not in html, url
            visited.append(path)
    assert transfer_id in await (await page.goto(console + "/flows")).text()  # type: ignore[union-attr]
    assert len(visited) == 2 * len(paths)
