"""A pupil's access report (AVG article 15) in a real browser, with a real hub and two connectors
each running `inbeeld-connector run` and `serve`: Den Haag (GM0518) offers Sanne's transfer to
Rotterdam (GM0599), whose officer accepts it in the werkbak; Den Haag completes it and then
asks the zuid-holland group about her, which Rotterdam's runtime answers from its register.
At both municipalities the report reached from her register row lists every step with the
other party, the legal basis the offer named (or the register of processing activities gives)
and the processing activity; the PDF downloads and its text holds the same steps; a viewer is
refused; every view and download is in the processing log with the person's name. Den Haag
also renders a letter to Sanne's parents with `letter render --bsn-stdin`: its report lists it
(template, language, addressee, the letter activity's legal basis), Rotterdam's does not, and
neither the command's output nor any log file holds the BSN. axe-core on every page."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from connectors.letters import shared_bundle_dir
from connectors.transfers import new_transfer_id
from tests.browser.workspace_pages import axe, log_in, reload_until
from tests.connectors.letters.conftest import poppler_text
from tests.utils.workspaces import PASSWORD, Municipality, workspace_world

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

OFFERER, RECEIVER = "GM0518", "GM0599"
GROUP = "zuid-holland"
DOSSIER = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))
BSN = DOSSIER["pupil"]["bsn"]
NAME = "Sanne Maria van der Voorbeeld"
BASIS = {"code": "lpw-1969-art-18", "citation": "Leerplichtwet 1969, artikel 18"}
NOTICE_BASIS = "Leerplichtwet 1969, artikel 16"
LETTER_BASIS = "Leerplichtwet 1969, artikel 16a"
LETTER = "we-zijn-je-kwijt"
HEADER = (
    "bsn,given_names,family_name_prefix,family_name,birth_date,street,house_number,postcode,city,"
    "municipality\n"
)


def _extra(code: str) -> str:
    return f"""
[notices]
name = "Team Leerplicht {code}"
department = "Leerplicht {code}"
phone = "070 353 1234"
email = "leerplicht@{code.lower()}.example"
check_seconds = 1

[processing_activities.transfer]
id = "{code}-VA-overdracht"
name = "Overdracht leerplichtdossier {code}"
[processing_activities.notice]
id = "{code}-VA-buren"
name = "Buren vragen {code}"
legal_basis = "{NOTICE_BASIS}"
[processing_activities.access]
id = "{code}-VA-inzage"
name = "Inzageverzoeken {code}"
[processing_activities.letter]
id = "{code}-VA-brieven"
name = "Brieven {code}"
legal_basis = "{LETTER_BASIS}"
"""


@pytest.fixture(scope="module")
async def towns(
    tmp_session: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Municipality]]:
    async with workspace_world(
        "report", tmp_session, tmp_path_factory, (OFFERER, RECEIVER), extra_config=_extra
    ) as found:
        yield found


async def _report_rows(page: Page, town: Municipality) -> list[str]:
    """Open Sanne's access report from her row in the register; its rows of steps."""
    await page.get_by_role("link", name="Register", exact=True).click()
    await page.get_by_label("Naam, geboortedatum of BSN").fill("voorbeeld")
    await page.get_by_role("button", name="Zoeken").click()
    await page.get_by_role("link", name=f"Inzageoverzicht van {NAME}").click()
    await expect(page.get_by_role("heading", name=f"Inzageoverzicht van {NAME}")).to_be_visible()
    await axe(page, f"access report at {town.code}")
    steps = page.get_by_role("table", name="Uitwisselingen en brieven").get_by_role("row")
    return [re.sub(r"\s+", " ", t) for t in (await steps.all_inner_texts())[1:]]


async def _pdf_text(page: Page, tmp_path: Path, town: Municipality) -> str:
    async with page.expect_download() as info:
        await page.get_by_role("link", name=f"Inzageoverzicht van {NAME} downloaden als PDF").click()
    download = await info.value
    assert BSN not in download.suggested_filename and download.suggested_filename.endswith(".pdf")
    target = tmp_path / f"{town.code}.pdf"
    await download.save_as(target)
    return re.sub(r"\s+", " ", poppler_text(target.read_bytes()))


def _check(
    rows: list[str], expected: list[tuple[str, str]], code: str, transfer_id: str, notice_id: str
) -> None:
    assert len(rows) == len(expected), rows
    for row, (what, other) in zip(rows, expected, strict=True):
        assert what in row and other in row, (row, what, other)
    for row in rows[:3]:
        assert transfer_id in row and f"{BASIS['citation']} ({BASIS['code']})" in row, row
        assert f"Overdracht leerplichtdossier {code} ({code}-VA-overdracht)" in row, row
    for row in rows[3:]:
        assert notice_id in row and NOTICE_BASIS in row and f"Buren vragen {code} ({code}-VA-buren)" in row


async def test_the_access_report_lists_every_exchange_about_a_pupil_at_both_municipalities(
    towns: dict[str, Municipality], page: Page, tmp_path: Path
) -> None:
    den_haag, rotterdam = towns[OFFERER], towns[RECEIVER]
    for town, name, role in (
        (den_haag, "bas", "officer"),
        (rotterdam, "anna", "officer"),
        (rotterdam, "victor", "viewer"),
    ):
        code, out = await town.cli("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
        assert code == 0, out
    pupil = DOSSIER["pupil"]
    csv_file = tmp_path / "den-haag.csv"
    csv_file.write_text(
        HEADER + f"{BSN},{pupil['given_names']},{pupil['family_name_prefix']},{pupil['family_name']},"
        f"{pupil['birth_date']},Proefstraat,12,2511 AB,Den Haag,GM0518\n",
        "utf-8",
    )
    code, out = await den_haag.cli("register", "import", str(csv_file))
    assert code == 0 and "imported 1 new" in out, out

    # The transfer: offered with its legal basis, accepted in Rotterdam, completed in Den Haag.
    transfer_id = new_transfer_id(OFFERER)
    dossier_file = tmp_path / "dossier.json"
    dossier_file.write_text(
        json.dumps({**DOSSIER, "transfer_id": transfer_id, "legal_basis": BASIS}), "utf-8"
    )
    code, out = await den_haag.cli("transfer", "offer", "--to", RECEIVER, "--file", str(dossier_file))
    assert code == 0, out
    await log_in(page, rotterdam, "anna")
    await reload_until(page, transfer_id)
    await page.get_by_role("link", name=f"Dossier {transfer_id} openen").click()
    await page.get_by_role("button", name="Accepteren").click()
    await expect(page.get_by_text(f"Overdracht {transfer_id} is geaccepteerd")).to_be_visible()
    await page.get_by_role("button", name="Uitloggen").click()
    await log_in(page, den_haag, "bas")
    await reload_until(page, "geaccepteerd")
    await page.get_by_role("button", name=f"Overdracht {transfer_id} afronden").click()
    await expect(page.get_by_text(f"Overdracht {transfer_id} is afgerond")).to_be_visible()

    # The notice: Den Haag asks the group; Rotterdam, which now registers her, answers.
    code, out = await den_haag.cli("notice", "send", "--group", GROUP, "--bsn-stdin", stdin=BSN + "\n")
    assert code == 0, out
    notice_id = re.findall(r"nt-[0-9a-f]+", out)[0]
    await page.get_by_role("link", name="Buren vragen", exact=True).click()
    await reload_until(page, f"gevonden bij {RECEIVER}", timeout=60)

    # A letter to Sanne's parents, about her (the BSN on standard input); one about no one.
    code, out = await den_haag.cli("templates", "import", str(shared_bundle_dir() / LETTER))
    assert code == 0, out
    values = tmp_path / "values.json"
    values.write_text(
        json.dumps(
            {
                "pupil_name": NAME,
                "case_number": "2026-0417",
                "officer_name": "Bas de Tester",
                "officer_phone": "070 353 1234",
                "contact_email": "leerplicht@gm0518.example",
            }
        ),
        "utf-8",
    )
    render = ["letter", "render", "-t", LETTER, "--lang", "pl", "--data", str(values)]
    code, out = await den_haag.cli(
        *render, "-o", str(tmp_path / "letter.pdf"), "--bsn-stdin", "--addressee", "parents", stdin=BSN + "\n"
    )
    assert code == 0 and "logged for the pupil's access report" in out and BSN not in out, out
    code, out = await den_haag.cli(*render, "-o", str(tmp_path / "anonymous.pdf"))
    assert code == 0 and "logged" not in out, out

    # Den Haag's report: every step, with Rotterdam (or the group asked) as the other party,
    # and the letter last, to the parents.
    rows = await _report_rows(page, den_haag)
    assert len(rows) == 6, rows
    letter = rows.pop()
    for part in (
        f"Brief gemaakt (sjabloon {LETTER}, versie 1.0.0, taal pl)",
        "ouders of verzorgers",
        LETTER_BASIS,
        f"Brieven {OFFERER} ({OFFERER}-VA-brieven)",
    ):
        assert part in letter, (part, letter)
    expected = [
        ("Overdracht aangeboden (verstuurd)", RECEIVER),
        ("Overdracht geaccepteerd (ontvangen)", RECEIVER),
        ("Overdracht afgerond (verstuurd)", RECEIVER),
        ("Buren gevraagd naar de leerling (verstuurd)", f"groep {GROUP}"),
        ("Gevonden gemeld (ontvangen)", RECEIVER),
    ]
    _check(rows, expected, OFFERER, transfer_id, notice_id)
    assert "identiteit (naam, BSN, geboortedatum)" in rows[0]
    text = await _pdf_text(page, tmp_path, den_haag)
    for what, _ in expected:
        assert what in text, (what, text)
    assert transfer_id in text and notice_id in text and BASIS["citation"] in text and NAME in text
    assert text.count(f"Met: {RECEIVER}") == 4 and f"Met: groep {GROUP}" in text
    assert f"Brief gemaakt (sjabloon {LETTER}, versie 1.0.0, taal pl)" in text, text
    assert "Met: ouders of verzorgers" in text and LETTER_BASIS in text, text
    await page.get_by_role("button", name="Uitloggen").click()

    # Rotterdam's report: the same exchanges, seen from the other side.
    await log_in(page, rotterdam, "anna")
    rows = await _report_rows(page, rotterdam)
    expected = [
        ("Overdracht aangeboden (ontvangen)", OFFERER),
        ("Overdracht geaccepteerd (verstuurd)", OFFERER),
        ("Overdracht afgerond (ontvangen)", OFFERER),
        ("Buren gevraagd naar de leerling (ontvangen)", OFFERER),
        ("Gevonden gemeld (verstuurd)", OFFERER),
    ]
    _check(rows, expected, RECEIVER, transfer_id, notice_id)
    assert not [row for row in rows if "Brief gemaakt" in row]  # the letter is Den Haag's
    text = await _pdf_text(page, tmp_path, rotterdam)
    for what, _ in expected:
        assert what in text, (what, text)
    assert text.count(f"Met: {OFFERER}") == 5 and BASIS["citation"] in text
    report_url = page.url
    await page.get_by_role("button", name="Uitloggen").click()

    # A viewer is refused the report, page and PDF.
    await log_in(page, rotterdam, "victor")
    await page.goto(report_url)
    await expect(page.get_by_text("Uw rol geeft geen toegang")).to_be_visible()
    assert await page.get_by_text(transfer_id).count() == 0
    await axe(page, "refused access report")
    refused = await page.request.get(report_url + ".pdf")
    assert refused.status == 403

    # Every view and download is in the processing log, with the person's name.
    for town, user in ((den_haag, "bas"), (rotterdam, "anna")):
        store = await town.store()
        try:
            logged = [
                (r.name, who, r.processing_activity_id) for r, who in await store.subject_records(BSN) if who
            ]
        finally:
            await store.close()
        assert (("access_report_viewed", user, f"{town.code}-VA-inzage")) in logged, logged
        assert (("access_report_downloaded", user, f"{town.code}-VA-inzage")) in logged, logged
        assert not [x for x in logged if x[1] == "victor"]
    for town in (den_haag, rotterdam):
        for proc in town.processes:
            assert proc.returncode is None, f"a process of {town.code} stopped"
        for log_file in town.folder.glob("*.log"):
            assert BSN not in log_file.read_text("utf-8", errors="replace"), log_file.name
