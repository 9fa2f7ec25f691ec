"""The connector's workspace in a real browser, with a real hub and two connectors, each
running `inbeeld-connector run` and `inbeeld-connector serve` as their own processes (Den Haag's
workspace in Den Haag's theme, Rotterdam's in Utrecht's): Den Haag's (GM0518) officer offers a
pupil of its register to Rotterdam (GM0599) from the register page (a receiver the directory
does not know, a dossier that fails the contract and a second submit of the same form each get
a message on the page and send nothing), and a second transfer with its CLI; Rotterdam's
viewer sees the offer in the werkbak but can neither open the dossier nor accept; Rotterdam's
officer opens the dossier (decrypted values on the page, the view in the processing log with
the officer's name) and accepts (the pupil is in Rotterdam's register, found on its register
page; a second submit does nothing again), and rejects the second offer with a reason; Den
Haag's werkbak then shows "geaccepteerd" and "afgewezen", and its officer completes the
accepted one. axe-core on every page."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from connectors import processing_log, register
from connectors.transfers import new_transfer_id
from tests.browser.workspace_pages import DOSSIER, axe, log_in, reload_until
from tests.utils.workspaces import PASSWORD, Municipality, workspace_world

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

OFFERER, RECEIVER = "GM0518", "GM0599"
THEMES = {OFFERER: "denhaag", RECEIVER: "utrecht"}
HEADER = (
    "bsn,given_names,family_name_prefix,family_name,birth_date,street,house_number,postcode,city,"
    "municipality,school_brin,school_name,school_level\n"
)
BASIS = "Leerplichtwet 1969, artikel 18 (lpw-1969-art-18)"


def _register_of_activities(code: str) -> str:
    """Den Haag's register of processing activities names the transfers' legal basis, which its
    workspace's offers name in the dossier; Rotterdam's names none (it reads the dossier's)."""
    if code != OFFERER:
        return ""
    return """
[processing_activities.transfer]
id = "GM0518-VA-overdracht"
name = "Overdracht leerplichtdossier bij verhuizing"
legal_basis = "Leerplichtwet 1969, artikel 18"
legal_basis_code = "lpw-1969-art-18"
"""


@pytest.fixture(scope="module")
async def world(
    tmp_session: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Municipality]]:
    async with workspace_world(
        "workspace",
        tmp_session,
        tmp_path_factory,
        (OFFERER, RECEIVER),
        themes=THEMES,
        extra_config=_register_of_activities,
    ) as towns:
        yield towns


async def test_an_offer_is_seen_opened_accepted_and_completed_in_the_workspaces(
    world: dict[str, Municipality], page: Page, tmp_path: Path
) -> None:
    den_haag, rotterdam = world[OFFERER], world[RECEIVER]
    for town, name, role in (
        (rotterdam, "anna", "officer"),
        (rotterdam, "victor", "viewer"),
        (den_haag, "bas", "officer"),
    ):
        code, out = await town.cli(
            "user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert code == 0, out
        assert f"account {name} added with role {role}" in out
    code, out = await rotterdam.cli(
        "user", "add", "anna", "--role", "officer", "--password-stdin", stdin=PASSWORD
    )
    assert code == 1 and "there is already an account named anna" in out
    code, out = await rotterdam.cli(
        "user", "add", "x y", "--role", "boss", "--password-stdin", stdin=PASSWORD
    )
    assert code == 1 and "a role is one of" in out

    pupil = DOSSIER["pupil"]
    address = DOSSIER["previous_address"]
    csv_file = tmp_path / "den-haag.csv"
    csv_file.write_text(
        HEADER
        + f"{pupil['bsn']},{pupil['given_names']},{pupil['family_name_prefix']},{pupil['family_name']},"
        f"{pupil['birth_date']},{address['street']},{address['house_number']},{address['postcode']},"
        f"{address['city']},{OFFERER},12AB,Basisschool De Proeftuin,po\n",
        "utf-8",
    )
    code, out = await den_haag.cli("register", "import", str(csv_file))
    assert code == 0 and "imported 1 new" in out, out
    transfer_id = await _offer_from_the_register(page, den_haag)
    # The dossier named the legal basis: Den Haag's access report shows it, with its code.
    offered = await _report_row(page, "Overdracht aangeboden (verstuurd)", transfer_id)
    assert BASIS in offered and "GM0518-VA-overdracht" in offered, offered
    await page.get_by_role("button", name="Uitloggen").click()

    dossier_file = tmp_path / "dossier.json"
    second_id = new_transfer_id(OFFERER)
    dossier_file.write_text(json.dumps({**DOSSIER, "transfer_id": second_id}), "utf-8")
    code, out = await den_haag.cli("transfer", "offer", "--to", RECEIVER, "--file", str(dossier_file))
    assert code == 0, out

    # The viewer sees the offer in the werkbak, but cannot open its dossier nor accept it.
    await log_in(page, rotterdam, "victor")
    await reload_until(page, transfer_id)
    await expect(page.get_by_role("link", name=f"Dossier {transfer_id} openen")).to_have_count(0)
    await axe(page, "werkbak (viewer)")
    await page.goto(f"{rotterdam.url}/offers/{transfer_id}")
    await expect(page.get_by_text("Uw rol geeft geen toegang")).to_be_visible()
    assert await page.get_by_text(pupil["family_name"]).count() == 0
    await axe(page, "refused dossier")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    refused = await page.request.post(
        f"{rotterdam.url}/offers/{transfer_id}/accept", form={"csrf": csrf or ""}, max_redirects=0
    )
    assert refused.status == 403
    await page.get_by_role("button", name="Uitloggen").click()
    await expect(page.get_by_text("U bent uitgelogd.")).to_be_visible()

    # The officer opens the decrypted dossier and accepts.
    await log_in(page, rotterdam, "anna")
    await page.get_by_role("link", name=f"Dossier {transfer_id} openen").click()
    await expect(page.get_by_role("heading", name=f"Dossier van overdracht {transfer_id}")).to_be_visible()
    await expect(page.get_by_text(pupil["bsn"])).to_be_visible()
    await expect(
        page.get_by_text(f"{pupil['given_names']} {pupil['family_name_prefix']} {pupil['family_name']}")
    ).to_be_visible()
    await expect(page.get_by_text(DOSSIER["guardians"][0]["email"])).to_be_visible()
    await expect(page.get_by_text(BASIS)).to_be_visible()  # the legal basis the offer named
    await axe(page, "dossier")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    await page.get_by_role("button", name="Accepteren").click()
    await expect(page.get_by_text(f"Overdracht {transfer_id} is geaccepteerd")).to_be_visible()
    await axe(page, "werkbak after accepting")
    again = await page.request.post(
        f"{rotterdam.url}/offers/{transfer_id}/accept", form={"csrf": csrf or ""}, max_redirects=0
    )
    assert again.status == 409
    assert "al beantwoord" in await again.text()

    await page.get_by_role("link", name="Register", exact=True).click()
    await page.get_by_label("Naam, geboortedatum of BSN").fill(pupil["bsn"])
    await page.get_by_role("button", name="Zoeken").click()
    await expect(page.get_by_text("1 leerling(en) gevonden.")).to_be_visible()
    row = page.get_by_role("row").filter(has_text=pupil["bsn"])
    await expect(row).to_contain_text("Testkade 7")
    await expect(row).to_contain_text("Basisschool De Proeftuin")
    await axe(page, "register with the accepted pupil")
    # Rotterdam's register names no legal basis: its report shows the one the dossier named.
    received = await _report_row(page, "Overdracht aangeboden (ontvangen)", transfer_id)
    assert BASIS in received, received
    # The offer made with `transfer offer` from a dossier file naming no article names none.
    other = await _report_row(page, "Overdracht aangeboden (ontvangen)", second_id)
    assert "niet vermeld" in other and "lpw-1969-art-18" not in other, other
    await page.get_by_role("link", name="Werkbak", exact=True).click()

    # The second offer is rejected with a reason.
    await page.get_by_role("link", name=f"Dossier {second_id} openen").click()
    await page.get_by_label("Reden", exact=True).select_option(label="Woont niet in deze gemeente")
    await page.get_by_role("button", name="Afwijzen").click()
    await expect(page.get_by_text(f"Overdracht {second_id} is afgewezen")).to_be_visible()

    store = await rotterdam.store()
    try:
        entered = await register.lookup(store, pupil["bsn"])
        assert entered is not None and entered["family_name"] == pupil["family_name"]
        log = await processing_log.entries(store, subject=transfer_id)
        assert [(e.user_name, e.activity) for e in reversed(log)] == [
            ("anna", "dossier_viewed"),
            ("anna", "transfer_accepted"),
        ]
        assert entered["address"]["street"] == "Testkade"
        log = await processing_log.entries(store, subject=second_id)
        assert [(e.user_name, e.activity) for e in reversed(log)] == [
            ("anna", "dossier_viewed"),
            ("anna", "transfer_rejected"),
        ]
    finally:
        await store.close()

    # Den Haag sees the acceptance and completes.
    await page.get_by_role("button", name="Uitloggen").click()
    await log_in(page, den_haag, "bas")
    await reload_until(page, "geaccepteerd")
    await reload_until(page, "afgewezen")
    await axe(page, "werkbak (offerer)")
    await page.get_by_role("button", name=f"Overdracht {transfer_id} afronden").click()
    await expect(page.get_by_text(f"Overdracht {transfer_id} is afgerond")).to_be_visible()
    await reload_until(page, "afgerond")
    await axe(page, "werkbak after completing")
    for town in (den_haag, rotterdam):
        for proc in town.processes:
            assert proc.returncode is None, f"a process of {town.code} stopped"


async def _offer_from_the_register(page: Page, den_haag: Municipality) -> str:
    """Den Haag's officer offers the register's pupil to Rotterdam from the register page; bad
    input is refused on the page with nothing sent. The offered transfer's id."""
    pupil = DOSSIER["pupil"]
    name = f"{pupil['given_names']} {pupil['family_name_prefix']} {pupil['family_name']}"
    await log_in(page, den_haag, "bas")
    await page.get_by_role("link", name="Register", exact=True).click()
    await page.get_by_label("Naam, geboortedatum of BSN").fill(pupil["family_name"])
    await page.get_by_role("button", name="Zoeken").click()
    await page.get_by_role("link", name=f"{name} overdragen aan een andere gemeente").click()
    await expect(page.get_by_role("heading", name="Overdracht aanbieden")).to_be_visible()
    await axe(page, "offer form")
    await expect(page.get_by_text(BASIS)).to_be_visible()  # the register of processing activities'
    options = await page.get_by_label("Aan (gemeente of bureau)").locator("option").all_inner_texts()
    assert RECEIVER in options and OFFERER not in options, options

    # A receiver the hub's directory does not know (a form altered in the browser).
    await page.locator("#to").evaluate("s => s.add(new Option('GM9999', 'GM9999', true, true))")
    await page.get_by_role("button", name="Overdracht aanbieden").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Niet verstuurd: to: not a tenant of the hub's directory")
    await expect(alert).to_contain_text("Er is niets verstuurd")
    await axe(page, "offer form refused")

    # A dossier that fails the contract: a moving date in the future.
    await page.get_by_label("Aan (gemeente of bureau)").select_option(RECEIVER)
    await page.get_by_label("Verhuisd op").fill("2099-01-06")
    await page.get_by_label("Straat").fill("Testkade")
    await page.get_by_label("Huisnummer").fill("7")
    await page.get_by_label("Postcode").fill("3011AA")
    await page.get_by_label("Plaats").fill("Rotterdam")
    guardian = DOSSIER["guardians"][0]
    await page.get_by_label("Voornamen").fill(guardian["given_names"])
    await page.get_by_label("Achternaam").fill(guardian["family_name"])
    await page.get_by_label("E-mail").fill(guardian["email"])
    await page.get_by_label("Voorkeurstaal").select_option(label="Pools")
    await page.get_by_role("button", name="Overdracht aanbieden").click()
    await expect(page.get_by_role("alert")).to_contain_text("Niet verstuurd: moved_on:")
    await expect(page.get_by_label("Straat")).to_have_value("Testkade")  # the form keeps its input
    await expect(page.get_by_label("Verhuisd op")).to_have_attribute("aria-invalid", "true")

    # Corrected and sent; the same form sent once more sends nothing again.
    await page.get_by_label("Verhuisd op").fill(DOSSIER["moved_on"])
    form = page.locator("form[action$='/outgoing/new']")
    fields = await form.evaluate("f => Object.fromEntries(new FormData(f))")
    await page.get_by_role("button", name="Overdracht aanbieden").click()
    done = page.get_by_role("status").filter(has_text="is aangeboden")
    await expect(done).to_be_visible(timeout=20_000)
    match = re.search(r"Overdracht (tr-GM0518-[0-9a-f]+) is aangeboden", await done.inner_text())
    assert match is not None
    transfer_id = match.group(1)
    await axe(page, "werkbak after offering")
    again = await page.request.post(f"{den_haag.url}/outgoing/new", form=fields)
    assert again.ok
    assert f"Dit formulier was al verstuurd (overdracht {transfer_id})" in await again.text()
    await reload_until(page, transfer_id)
    assert await page.get_by_role("row").filter(has_text="tr-GM0518-").count() == 1  # offered once

    store = await den_haag.store()
    try:
        log = await processing_log.entries(store, subject=transfer_id)
        assert [(e.user_name, e.activity) for e in log] == [("bas", "transfer_offered")]
    finally:
        await store.close()
    return transfer_id


async def _report_row(page: Page, step: str, transfer_id: str) -> str:
    """The row of `step` of `transfer_id` in the access report of the dossier's pupil, reached
    from the register."""
    pupil = DOSSIER["pupil"]
    name = f"{pupil['given_names']} {pupil['family_name_prefix']} {pupil['family_name']}"
    await page.get_by_role("link", name="Register", exact=True).click()
    await page.get_by_label("Naam, geboortedatum of BSN").fill(pupil["family_name"])
    await page.get_by_role("button", name="Zoeken").click()
    await page.get_by_role("link", name=f"Inzageoverzicht van {name}").click()
    await expect(page.get_by_role("heading", name=f"Inzageoverzicht van {name}")).to_be_visible()
    rows = (
        page.get_by_role("table", name="Uitwisselingen en brieven")
        .get_by_role("row")
        .filter(has_text=step)
        .filter(has_text=transfer_id)
    )
    await expect(rows).to_have_count(1)
    return re.sub(r"\s+", " ", await rows.inner_text())


async def _add_users(town: Municipality, *users: tuple[str, str]) -> None:
    for name, role in users:
        code, out = await town.cli("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
        assert code == 0, out


async def _offer_by_cli(town: Municipality, to: str, tmp_path: Path) -> str:
    transfer_id = new_transfer_id(town.code)
    dossier_file = tmp_path / f"dossier-{transfer_id}.json"
    dossier = {**DOSSIER, "transfer_id": transfer_id}
    dossier["new_address"] = {**DOSSIER["new_address"], "municipality": to}
    dossier_file.write_text(json.dumps(dossier), "utf-8")
    code, out = await town.cli("transfer", "offer", "--to", to, "--file", str(dossier_file))
    assert code == 0, out
    return transfer_id


async def test_every_workspace_page_passes_axe_under_both_themes(
    world: dict[str, Municipality], page: Page, tmp_path: Path
) -> None:
    """Every page of the workspace, in Den Haag's theme (Den Haag) and Utrecht's (Rotterdam)."""
    pupil = DOSSIER["pupil"]
    received: dict[str, str] = {}
    for code, other in ((OFFERER, RECEIVER), (RECEIVER, OFFERER)):
        await _add_users(world[code], ("olga", "officer"), ("eddy", "editor"))
        received[other] = await _offer_by_cli(world[code], other, tmp_path)
    row = (
        f"{pupil['bsn']},{pupil['given_names']},,{pupil['family_name']},{pupil['birth_date']},"
        "Proefstraat,12,2511 AB,Den Haag,GM0518,,,\n"
    )
    upload = tmp_path / "register.csv"
    upload.write_text(HEADER + row + "123456789,Fout,,Rij,2015-02-03,Laan,3,2513 CC,Den Haag,GM0518,,,\n")
    for code, town in world.items():
        theme = THEMES[code]

        async def check(what: str, *, town: Municipality = town, theme: str = theme) -> None:
            classes = (await page.get_attribute("html", "class") or "").split()
            assert f"{theme}-theme" in classes, (town.code, what, classes)
            await axe(page, f"{town.code} ({theme}): {what}")

        await log_in(page, town, "olga")  # the login page is checked there
        await check("werkbak")
        await reload_until(page, received[code])
        await check("werkbak with an offer")
        await page.get_by_role("link", name=f"Dossier {received[code]} openen").click()
        await expect(
            page.get_by_role("heading", name=f"Dossier van overdracht {received[code]}")
        ).to_be_visible()
        await check("dossier")
        await page.get_by_role("link", name="Register", exact=True).click()
        await check("register")
        await page.get_by_label("CSV-bestand").set_input_files(str(upload))
        await page.get_by_role("button", name="Importeren").click()
        await expect(page.get_by_role("alert")).to_contain_text("1 rij(en) geweigerd")
        await check("register import report")
        await page.get_by_label("Naam, geboortedatum of BSN").fill(pupil["bsn"])
        await page.get_by_role("button", name="Zoeken").click()
        await expect(page.get_by_text("1 leerling(en) gevonden.")).to_be_visible()
        await check("register search results")
        await page.get_by_role("link", name=re.compile("^Buren vragen naar")).click()
        await expect(page.get_by_role("heading", name="Buren vragen naar een leerling")).to_be_visible()
        await check("ask the neighbours")
        await page.get_by_role("link", name="Terug naar het register").click()
        await page.get_by_label("Naam, geboortedatum of BSN").fill(pupil["bsn"])
        await page.get_by_role("button", name="Zoeken").click()
        await page.get_by_role("link", name=re.compile("overdragen aan een andere gemeente$")).click()
        await expect(page.get_by_role("heading", name="Overdracht aanbieden")).to_be_visible()
        await check("offer form")
        await page.goto(f"{town.url}/register/shred")
        await check("shred confirmation")
        await page.get_by_role("link", name="Buren vragen", exact=True).click()
        await expect(page.get_by_role("heading", name="Buren vragen", exact=True)).to_be_visible()
        await check("notices")
        await page.goto(f"{town.url}/offers/tr-unknown-transfer")
        await check("not found")
        await page.goto(f"{town.url}/?lang=en")
        await check("werkbak in English")
        await page.goto(f"{town.url}/?lang=nl")
        await page.get_by_role("button", name="Uitloggen").click()
        await log_in(page, town, "eddy")
        await page.get_by_role("link", name="Sjablonenstudio").click()
        await check("template studio")
        await page.goto(f"{town.url}/offers/{received[code]}")
        await check("refused to an editor")
        await page.get_by_role("button", name="Uitloggen").click()
        await check("logged out")


async def _focus_is_visible(page: Page) -> str:
    """The focused element's description; fails unless it draws a visible focus indicator."""
    shown = await page.evaluate(
        """() => {
            const el = document.activeElement;
            const s = getComputedStyle(el);
            return {tag: el.tagName, text: (el.innerText || el.value || el.id || '').slice(0, 60),
                    outline: s.outlineStyle, width: parseFloat(s.outlineWidth), shadow: s.boxShadow};
        }"""
    )
    assert shown["tag"] != "BODY", shown
    assert shown["outline"] != "none" and shown["width"] >= 2, shown
    return f"{shown['tag']} {shown['text']}"


async def _tab_until(page: Page, target: str, presses: int = 60) -> None:
    """Tab (only) until the element matching `target` has the focus, each stop visibly focused."""
    wanted = page.locator(target)
    for _ in range(presses):
        await page.keyboard.press("Tab")
        await _focus_is_visible(page)
        if await wanted.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{target} is not reachable with Tab")


async def test_the_werkbak_journey_by_keyboard_alone(
    world: dict[str, Municipality], page: Page, tmp_path: Path
) -> None:
    """Log in, open an offer's dossier and accept it with Tab, Enter and Space only; every
    stop on the way shows where the focus is. In Den Haag's theme."""
    den_haag = world[OFFERER]
    await _add_users(den_haag, ("kees", "officer"))
    transfer_id = await _offer_by_cli(world[RECEIVER], OFFERER, tmp_path)
    await page.goto(den_haag.url + "/")
    await _tab_until(page, "#name")
    await page.keyboard.type("kees")
    await _tab_until(page, "#password")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Werkbak")).to_be_visible()
    await reload_until(page, transfer_id)
    await _tab_until(page, f"a[href$='/offers/{transfer_id}']")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name=f"Dossier van overdracht {transfer_id}")).to_be_visible()
    await _tab_until(page, "form[action$='/accept'] button")
    await page.keyboard.press("Space")
    await expect(page.get_by_text(f"Overdracht {transfer_id} is geaccepteerd")).to_be_visible()
    await axe(page, "werkbak after accepting by keyboard")
