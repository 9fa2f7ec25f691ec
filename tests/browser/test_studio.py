"""The template studio in a real browser, with a real hub and two connectors running as their
own processes: Ingrado (publisher, `run` and `serve`) and Rotterdam (GM0599, `run`, following
Ingrado). Ingrado's officer is refused the studio; its editor edits the Arabic text, sees an
undeclared placeholder flagged at its line, fixes it, sees the preview right-to-left (alone and
bilingual), publishes 1.1.0 and sees it reached Rotterdam; Rotterdam's catalogue then lists
1.1.0 (`templates list`) and renders it (`letter render`). The editor sees what 1.1.0 changed,
is told the hub refuses to withdraw 1.0.0 (never published through it), and withdraws 1.1.0,
which Rotterdam then lists as retired.
axe-core on every studio page."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from connectors.letters import load_shared_bundle, sample_values, shared_bundle_dir
from tests.browser.workspace_pages import axe, log_in
from tests.utils.workspaces import PASSWORD, Municipality, workspace_world

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

PUBLISHER, SUBSCRIBER = "ingrado", "GM0599"
TEMPLATE = "we-zijn-je-kwijt"
NEW_SENTENCE = "نرحب بكم دائمًا في مكتبنا."


@pytest.fixture(scope="module")
async def world(
    tmp_session: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Municipality]]:
    async with workspace_world(
        "studio",
        tmp_session,
        tmp_path_factory,
        (PUBLISHER, SUBSCRIBER),
        serve=(PUBLISHER,),
        env={"COLUMNS": "200"},  # `templates list` prints its table uncut
    ) as parties:
        yield parties


async def _until_listed(party: Municipality, text: str, timeout: float = 60) -> str:
    end = asyncio.get_running_loop().time() + timeout
    while True:
        code, out = await party.cli("templates", "list")
        assert code == 0, out
        if text in out:
            return out
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"{party.code} never listed {text!r}: {out}")
        await asyncio.sleep(1)


async def test_an_editor_edits_checks_previews_and_publishes_a_new_version(
    world: dict[str, Municipality], page: Page, tmp_path: Path
) -> None:
    ingrado, rotterdam = world[PUBLISHER], world[SUBSCRIBER]
    code, out = await ingrado.cli("templates", "import", str(shared_bundle_dir() / TEMPLATE))
    assert code == 0 and f"imported {TEMPLATE}@1.0.0" in out, out
    for name, role in (("erik", "editor"), ("olga", "officer")):
        code, out = await ingrado.cli(
            "user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert code == 0, out
    code, out = await rotterdam.cli("templates", "follow", PUBLISHER)
    assert code == 0 and "following ingrado" in out, out

    # An officer has no studio: no menu item, and the page refuses.
    await log_in(page, ingrado, "olga")
    await expect(page.get_by_role("link", name="Sjablonenstudio")).to_have_count(0)
    response = await page.goto(ingrado.url + "/studio")
    assert response is not None and response.status == 403
    await expect(page.get_by_text("Uw rol geeft geen toegang")).to_be_visible()
    await axe(page, "studio refused")
    await page.get_by_role("button", name="Uitloggen").click()

    # The editor finds the template in the studio's list.
    await log_in(page, ingrado, "erik")
    await page.get_by_role("link", name="Sjablonenstudio").click()
    await expect(page.get_by_role("heading", name="Sjablonenstudio")).to_be_visible()
    await expect(page.get_by_text("1.0.0 (in gebruik)")).to_be_visible()
    await axe(page, "studio list")
    await page.get_by_role("link", name=f"Sjabloon {TEMPLATE} bewerken").click()
    await expect(page.get_by_role("heading", name=f"Sjabloon {TEMPLATE} bewerken")).to_be_visible()
    arabic = page.get_by_label("Tekst (Arabisch)")
    await expect(arabic).to_have_attribute("dir", "rtl")
    await expect(arabic).to_have_attribute("lang", "ar")
    await expect(page.get_by_role("cell", name="((pupil_name))")).to_be_visible()
    await expect(page.get_by_label("Versie", exact=True)).to_have_value("1.1.0")
    await axe(page, "studio editor")

    # Edit the Arabic text; an undeclared placeholder is flagged at its line.
    original = await arabic.input_value()
    lines = original.split("\n")
    assert "((pupil_name))" in lines[2]
    edited = [*lines[:-1], NEW_SENTENCE, lines[-1]] if lines[-1] else [*lines, NEW_SENTENCE]
    await page.get_by_label("Taal van het voorbeeld").select_option(label="Arabisch")
    wrong = list(edited)
    wrong[2] = wrong[2] + " ((foo))"
    await arabic.fill("\n".join(wrong))
    problems = page.locator("#problems-ar-body")
    await expect(problems).to_contain_text("regel 3: invulveld ((foo)) is niet gedeclareerd in het manifest")
    await expect(page.locator("#problems-nl-body li")).to_have_count(0)
    await expect(page.locator("#preview")).to_contain_text("Geen voorbeeld")
    await axe(page, "studio editor with a problem")

    # Fixed: the problem goes, the preview shows the Arabic letter right-to-left.
    await arabic.fill("\n".join(edited))
    await expect(problems.locator("li")).to_have_count(0)
    letter = page.locator("#preview section.letter[lang=ar]")
    await expect(letter).to_have_attribute("dir", "rtl")
    await expect(letter).to_contain_text(NEW_SENTENCE)
    await expect(letter).to_contain_text("Sam de Boer")  # the manifest's sample value
    await page.get_by_label("Tweetalig (Nederlands en de gekozen taal)").check()
    await expect(page.locator("#preview section.letter[lang=nl]")).to_have_attribute("dir", "ltr")
    await expect(letter).to_have_attribute("dir", "rtl")
    await axe(page, "studio editor with the bilingual preview")

    # Publish 1.1.0: signed, sent, and Rotterdam reached.
    await page.get_by_role("button", name="Controleren en publiceren").click()
    await expect(page.get_by_text(f"Versie 1.1.0 van {TEMPLATE} is gepubliceerd.")).to_be_visible(
        timeout=60_000
    )
    reached = page.get_by_test_id("reached")
    await expect(reached).to_contain_text(SUBSCRIBER)
    count = re.search(r"Verstuurd naar (\d+) abonnee", await reached.inner_text())
    assert count and int(count[1]) >= 1
    await expect(page.get_by_label("Versie", exact=True)).to_have_value("1.2.0")  # the next one
    await axe(page, "studio after publishing")

    # Rotterdam's catalogue lists 1.1.0 and renders it.
    listed = await _until_listed(rotterdam, "1.1.0")
    assert TEMPLATE in listed and "ingrado" in listed
    values = tmp_path / "values.json"
    bundle = load_shared_bundle(TEMPLATE)
    values.write_text(json.dumps({k: str(v) for k, v in sample_values(bundle.placeholders).items()}), "utf-8")
    letter_file = tmp_path / "letter.html"
    code, out = await rotterdam.cli(
        "letter", "render", "-t", TEMPLATE, "--lang", "ar", "--data", str(values), "-o", str(letter_file)
    )
    assert code == 0 and f"{TEMPLATE}@1.1.0" in out, out
    html = letter_file.read_text("utf-8")
    assert NEW_SENTENCE in html and re.search(r'<section class="letter" lang="ar" dir="rtl">', html)

    # What 1.1.0 changed, as a subscriber would see it.
    await page.get_by_role("link", name="Terug naar de sjablonen").click()
    await page.get_by_role("link", name=f"Wijzigingen in de nieuwste versie van {TEMPLATE}").click()
    await expect(page.get_by_text("Wat versie 1.1.0 veranderde tegenover versie 1.0.0")).to_be_visible()
    await expect(page.locator("pre.studio-diff ins").filter(has_text=NEW_SENTENCE)).to_have_count(1)
    await axe(page, "studio diff")
    await page.get_by_role("link", name="Terug naar de sjablonen").click()
    await page.get_by_role("link", name=f"Sjabloon {TEMPLATE} bewerken").click()

    # 1.0.0 never went through the hub (it was imported here): the hub refuses to withdraw it,
    # and the page says so.
    await page.get_by_role("button", name="Versie 1.0.0 intrekken").click()
    await expect(page.get_by_text("De hub weigerde dit")).to_be_visible(timeout=60_000)
    await axe(page, "studio after a refused withdrawal")
    # 1.1.0 is withdrawn: the studio and Rotterdam show it withdrawn, and the next version
    # proposed stays above it.
    await page.get_by_label("Reden om 1.1.0 in te trekken").fill("tekst wordt herzien")
    await page.get_by_role("button", name="Versie 1.1.0 intrekken").click()
    await expect(page.get_by_text(f"Versie 1.1.0 van {TEMPLATE} is ingetrokken.")).to_be_visible(
        timeout=60_000
    )
    await expect(page.get_by_label("Versie", exact=True)).to_have_value("1.2.0")
    await page.get_by_role("link", name="Terug naar de sjablonen").click()
    await expect(page.get_by_text("1.1.0 (ingetrokken)")).to_be_visible()
    await expect(page.get_by_text("1.0.0 (in gebruik)")).to_be_visible()
    await axe(page, "studio list after withdrawing")
    await _until_listed(rotterdam, "retired: tekst wordt herzien")
    for party in (ingrado, rotterdam):
        for proc in party.processes:
            assert proc.returncode is None, f"a process of {party.code} stopped"
