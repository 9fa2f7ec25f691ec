"""The workspace's register and notices pages in a real browser, with a real hub and two
connectors, each running `inbeeld-connector run` and `inbeeld-connector serve`: Den Haag's
(GM0518) officer uploads a CSV with a malformed row (its line and reason on the page, the good
rows imported), searches the register with the keyboard, asks the zuid-holland group about a
pupil that Rotterdam (GM0599) registers; Rotterdam's runtime matches it and, answering being
off there, its officer confirms on the notices page before "found" is sent; Den Haag's officer
sees the answer with Rotterdam's contact person and closes the notice. Every view and step is
in the processing logs with the officer's name; no BSN is in any log line of either connector.
axe-core on every page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from connectors import processing_log, register
from connectors.schema import local_notices
from schemas.fields import passes_eleven_test
from tests.browser.workspace_pages import axe, log_in, reload_until
from tests.utils.workspaces import PASSWORD, Municipality, workspace_world

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

ASKER, FINDER = "GM0518", "GM0599"
GROUP = "zuid-holland"  # a seed group: both are members
BSN, OTHER_BSN, BAD_BSN = "111222333", "123456782", "123456789"
HEADER = (
    "bsn,given_names,family_name_prefix,family_name,birth_date,street,house_number,postcode,city,"
    "municipality\n"
)
SANNE = f"{BSN},Sanne,van,Voorbeeld,2014-05-17,Proefstraat,1,3011 AA,Rotterdam,GM0599\n"
YUSUF = f"{OTHER_BSN},Yusuf,,Testmans,2013-01-02,Kade,12,2511 BB,Den Haag,GM0518\n"
BAD = f"{BAD_BSN},Fout,,Rij,2015-02-03,Laan,3,2513 CC,Den Haag,GM0518\n"  # fails the 11-test


def _notices(code: str) -> str:
    # Den Haag answers on its own; Rotterdam's officer confirms a match before "found" is sent.
    return f"""
[notices]
name = "Team Leerplicht {code}"
department = "Leerplicht {code}"
phone = "070 353 1234"
email = "leerplicht@{code.lower()}.example"
auto_answer = {"false" if code == FINDER else "true"}
check_seconds = 1
"""


@pytest.fixture(scope="module")
async def towns(
    tmp_session: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Municipality]]:
    async with workspace_world(
        "notices", tmp_session, tmp_path_factory, (ASKER, FINDER), extra_config=_notices
    ) as found:
        for town in found.values():
            mode = "record" if town.code == FINDER else "answer"
            assert town.started["notices"] == mode, town.started
        yield found


async def _tab_to(page: Page, selector: str, presses: int = 40) -> None:
    """Move the focus with Tab alone until `selector` has it (the form is keyboard reachable)."""
    target = page.locator(selector)
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{selector} is not reachable with the keyboard")


async def test_an_officer_asks_the_neighbours_about_a_register_pupil_and_closes_the_notice(
    towns: dict[str, Municipality], page: Page, tmp_path: Path
) -> None:
    den_haag, rotterdam = towns[ASKER], towns[FINDER]
    for town, name in ((den_haag, "bas"), (rotterdam, "anna")):
        code, out = await town.cli(
            "user", "add", name, "--role", "officer", "--password-stdin", stdin=PASSWORD
        )
        assert code == 0, out
    csv_file = tmp_path / "rotterdam.csv"
    csv_file.write_text(HEADER + SANNE, "utf-8")
    code, out = await rotterdam.cli("register", "import", str(csv_file))
    assert code == 0 and "imported 1 new" in out, out

    # Den Haag's register: a CSV upload with a malformed row.
    await log_in(page, den_haag, "bas")
    await page.get_by_role("link", name="Register", exact=True).click()
    await expect(page.get_by_role("heading", name="Leerlingenregister")).to_be_visible()
    await axe(page, "register")
    upload = tmp_path / "den-haag.csv"
    upload.write_text(HEADER + SANNE + BAD + YUSUF, "utf-8")
    await page.get_by_label("CSV-bestand").set_input_files(str(upload))
    await page.get_by_role("button", name="Importeren").click()
    await expect(page.get_by_text("2 nieuw, 0 vervangen, 1 rij(en) geweigerd.")).to_be_visible()
    errors = page.get_by_role("table", name="Geweigerde rijen")
    await expect(errors.get_by_role("row")).to_have_count(2)  # the header and the one bad row
    await expect(errors.get_by_role("row").nth(1)).to_contain_text(re.compile(r"3\s*bsn\s*.*11-test"))
    assert BAD_BSN not in await page.content()
    await axe(page, "register after an import with a bad row")

    # A large file is imported in the background: a progress bar, then the report (htmx).
    many = [f"{i:09d}" for i in range(200_000_000, 200_050_000) if passes_eleven_test(f"{i:09d}")][:3500]
    big = tmp_path / "groot.csv"
    big.write_text(
        HEADER
        + "".join(
            f"{b},Kind{i},,Proefpersoon,2012-03-04,Laan,{i + 1},2511 AA,Den Haag,GM0518\n"
            for i, b in enumerate(many)
        ),
        "utf-8",
    )
    assert big.stat().st_size > 256 * 1024
    await page.get_by_label("CSV-bestand").set_input_files(str(big))
    await page.get_by_role("button", name="Importeren").click()
    await expect(page).to_have_url(re.compile(r"/register/import/[A-Za-z0-9_-]+$"))
    if await page.locator("#import-bar").count():
        await axe(page, "import progress")
    await expect(page.get_by_text("3500 nieuw, 0 vervangen, 0 rij(en) geweigerd.")).to_be_visible(
        timeout=120_000
    )
    await expect(page.locator("#import-bar")).to_have_count(0)

    # Search with the keyboard alone.
    await _tab_to(page, "#q")
    await page.keyboard.type("voorbeeld")
    await page.keyboard.press("Enter")
    results = page.get_by_role("table", name="Resultaten")
    await expect(results.get_by_role("row")).to_have_count(2)
    await expect(results).to_contain_text("Sanne van Voorbeeld")
    await expect(results).to_contain_text(BSN)
    await axe(page, "register search results")

    # Ask the neighbours about her.
    await page.get_by_role("link", name="Buren vragen naar Sanne van Voorbeeld").click()
    await expect(page.get_by_role("heading", name="Buren vragen naar een leerling")).to_be_visible()
    await expect(page.get_by_label("Groep")).to_have_value(GROUP)
    await expect(page.get_by_label("Afdeling")).to_have_value(f"Leerplicht {ASKER}")
    assert BSN not in await page.content()  # only the name and birth date on the form
    await axe(page, "new notice")
    await _tab_to(page, "#group")
    await page.keyboard.press("Tab")
    await expect(page.locator("#department")).to_be_focused()
    form = await page.locator("form[action$='/notices']").evaluate(
        "f => Object.fromEntries(new FormData(f).entries())"
    )
    await _tab_to(page, "button[type=submit]:has-text('Vraag versturen')")
    await page.keyboard.press("Enter")
    sent = page.get_by_text(re.compile(r"Vraag nt-[0-9a-f]+ is verstuurd\."))
    await expect(sent).to_be_visible()
    notice_id = re.findall(r"nt-[0-9a-f]+", await sent.inner_text())[0]
    await axe(page, "notices after sending")
    # The same form submitted again (a double click, a reload) sends nothing again.
    again = await page.request.post(f"{den_haag.url}/notices", form=form, max_redirects=0)
    assert again.status == 303 and f"done=already_sent&id={notice_id}" in again.headers["location"]
    await page.goto(den_haag.url + "/notices?done=already_sent&id=" + notice_id)
    await expect(page.get_by_text("Dit formulier was al verstuurd")).to_be_visible()
    await expect(page.get_by_role("table", name="Gestelde vragen").get_by_role("row")).to_have_count(2)

    # Rotterdam's runtime finds her in its register; its officer confirms, and "found" is sent.
    await page.get_by_role("button", name="Uitloggen").click()
    await log_in(page, rotterdam, "anna")
    await page.get_by_role("link", name="Buren vragen", exact=True).click()
    await reload_until(page, "Wacht op uw bevestiging", timeout=60)
    waiting = page.get_by_role("table", name="Wacht op uw bevestiging")
    await expect(waiting).to_contain_text(notice_id)
    await expect(waiting).to_contain_text("Sanne van Voorbeeld (2014-05-17)")
    await axe(page, "notices awaiting confirmation")
    await page.get_by_role("button", name=f"Vraag {notice_id} van {ASKER}: gevonden melden").click()
    await expect(page.get_by_text(f"Vraag {notice_id}: gevonden is gemeld")).to_be_visible()
    await expect(page.get_by_role("table", name="Wacht op uw bevestiging")).to_have_count(0)
    await expect(page.get_by_role("table", name="Vragen van buren")).to_contain_text("gevonden gemeld")
    await page.get_by_role("button", name="Uitloggen").click()

    # Den Haag's list shows the answer.
    await log_in(page, den_haag, "bas")
    await page.get_by_role("link", name="Buren vragen", exact=True).click()
    await reload_until(page, f"gevonden bij {FINDER}", timeout=60)
    row = page.get_by_role("row").filter(has_text=notice_id)
    await expect(row).to_contain_text("open")
    await expect(page.get_by_label("Reden")).to_have_value("found")
    # ... with whom to talk there: the contact person Rotterdam's answer named.
    await expect(row).to_contain_text(f"Contact bij {FINDER}: Team Leerplicht {FINDER}, Leerplicht {FINDER}")
    await expect(row.get_by_role("link", name=f"leerplicht@{FINDER.lower()}.example")).to_have_attribute(
        "href", f"mailto:leerplicht@{FINDER.lower()}.example"
    )
    await axe(page, "notices with a found answer")
    await page.get_by_role("button", name=f"Vraag {notice_id} sluiten").click()
    await expect(page.get_by_text(f"Vraag {notice_id} is gesloten")).to_be_visible()
    await expect(page.get_by_role("row").filter(has_text=notice_id)).to_contain_text("gesloten")
    await expect(page.get_by_role("button", name=f"Vraag {notice_id} sluiten")).to_have_count(0)
    await axe(page, "notices after closing")

    store = await den_haag.store()
    try:
        asked = await register.lookup(store, BSN)
        assert asked is not None and await register.lookup(store, BAD_BSN) is None
        log = [(e.user_name, e.activity, e.subject) for e in reversed(await processing_log.entries(store))]
        assert log[0][:2] == log[1][:2] == ("bas", "register_imported")
        assert log[2:] == [
            ("bas", "register_viewed", asked["id"]),
            ("bas", "pupil_viewed", asked["id"]),
            ("bas", "notice_sent", notice_id),
            ("bas", "notice_closed", notice_id),
        ]
    finally:
        await store.close()

    # Rotterdam's side: the question arrived and was answered after anna confirmed.
    store = await rotterdam.store()
    try:
        async with store.engine.connect() as conn:
            row_ = (
                await conn.execute(local_notices.select().where(local_notices.c.notice_id == notice_id))
            ).first()
        assert row_ is not None and row_.answered == 1
        found_here = await register.lookup(store, BSN)
        assert found_here is not None
        log = [(e.user_name, e.activity, e.subject) for e in reversed(await processing_log.entries(store))]
        assert ("anna", "pupil_viewed", found_here["id"]) in log
        assert log[-1] == ("anna", "notice_answered", notice_id)
    finally:
        await store.close()

    for town in (den_haag, rotterdam):
        for proc in town.processes:
            assert proc.returncode is None, f"a process of {town.code} stopped"
        for log_file in town.folder.glob("*.log"):
            text = log_file.read_text("utf-8", errors="replace")
            leaked = [b for b in (BSN, OTHER_BSN, BAD_BSN, "Voorbeeld", "Proefstraat") if b in text]
            assert not leaked, (log_file.name, leaked)
