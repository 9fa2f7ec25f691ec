"""The connector's workspace in a real browser, with a real hub and two connectors, each
running `inbeeld-connector run` and `inbeeld-connector serve` as their own processes:
Den Haag (GM0518) offers a transfer with its CLI; Rotterdam's (GM0599) viewer sees it in the
werkbak but can neither open the dossier nor accept; Rotterdam's officer opens the dossier
(decrypted values on the page, the view in the processing log with the officer's name) and
accepts (the pupil is in Rotterdam's register; a second submit does nothing again), and
rejects a second offer with a reason; Den Haag's werkbak then shows "geaccepteerd" and
"afgewezen", and its officer completes the accepted one. axe-core on every page."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from connectors import processing_log, register
from connectors.transfers import new_transfer_id
from hub.api.app import create_app
from tests.browser.conftest import axe_violations
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.api import served
from tests.utils.workspaces import PASSWORD, Municipality, running_connectors

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

OFFERER, RECEIVER = "GM0518", "GM0599"
DOSSIER = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))


@pytest.fixture(scope="module")
async def world(
    tmp_session: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Municipality]]:
    label = f"workspace_{uuid.uuid4().hex[:6]}"
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{label}",
        database_url=await make_database_url("sqlite", label, tmp_session),
    )
    async with (
        private_hub(settings, "sqlite", label) as hub,
        served(create_app(hub.settings, hub.db)) as api_url,
    ):
        root = tmp_path_factory.mktemp("workspace")
        async with running_connectors(hub, api_url, root, (OFFERER, RECEIVER)) as towns:
            for town in towns.values():
                assert town.started["keys_registered"], town.started
            yield towns


async def _axe(page: Page, what: str) -> None:
    found = await axe_violations(page)
    assert found == [], (what, found)


async def _log_in(page: Page, town: Municipality, name: str) -> None:
    await page.goto(town.url + "/")
    await expect(page.get_by_role("heading", name="Inloggen")).to_be_visible()
    await _axe(page, "login")
    await page.get_by_label("Naam").fill(name)
    await page.get_by_label("Wachtwoord").fill(PASSWORD)
    await page.get_by_role("button", name="Inloggen").click()
    await expect(page.get_by_role("heading", name="Werkbak")).to_be_visible()


async def _reload_until(page: Page, text: str | re.Pattern[str], timeout: float = 45) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while await page.get_by_text(text).count() == 0:
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"never showed {text!r}: {await page.content()}")
        await asyncio.sleep(0.5)
        await page.reload()


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

    transfer_id = new_transfer_id(OFFERER)
    dossier_file = tmp_path / "dossier.json"
    dossier_file.write_text(json.dumps({**DOSSIER, "transfer_id": transfer_id}), "utf-8")
    code, out = await den_haag.cli("transfer", "offer", "--to", RECEIVER, "--file", str(dossier_file))
    assert code == 0, out
    second_id = new_transfer_id(OFFERER)
    dossier_file.write_text(json.dumps({**DOSSIER, "transfer_id": second_id}), "utf-8")
    code, out = await den_haag.cli("transfer", "offer", "--to", RECEIVER, "--file", str(dossier_file))
    assert code == 0, out
    pupil = DOSSIER["pupil"]

    # The viewer sees the offer in the werkbak, but cannot open its dossier nor accept it.
    await _log_in(page, rotterdam, "victor")
    await _reload_until(page, transfer_id)
    await expect(page.get_by_role("link", name=f"Dossier {transfer_id} openen")).to_have_count(0)
    await _axe(page, "werkbak (viewer)")
    await page.goto(f"{rotterdam.url}/offers/{transfer_id}")
    await expect(page.get_by_text("Uw rol geeft geen toegang")).to_be_visible()
    assert await page.get_by_text(pupil["family_name"]).count() == 0
    await _axe(page, "refused dossier")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    refused = await page.request.post(
        f"{rotterdam.url}/offers/{transfer_id}/accept", form={"csrf": csrf or ""}, max_redirects=0
    )
    assert refused.status == 403
    await page.get_by_role("button", name="Uitloggen").click()
    await expect(page.get_by_text("U bent uitgelogd.")).to_be_visible()

    # The officer opens the decrypted dossier and accepts.
    await _log_in(page, rotterdam, "anna")
    await page.get_by_role("link", name=f"Dossier {transfer_id} openen").click()
    await expect(page.get_by_role("heading", name=f"Dossier van overdracht {transfer_id}")).to_be_visible()
    await expect(page.get_by_text(pupil["bsn"])).to_be_visible()
    await expect(
        page.get_by_text(f"{pupil['given_names']} {pupil['family_name_prefix']} {pupil['family_name']}")
    ).to_be_visible()
    await expect(page.get_by_text(DOSSIER["guardians"][0]["email"])).to_be_visible()
    await _axe(page, "dossier")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    await page.get_by_role("button", name="Accepteren").click()
    await expect(page.get_by_text(f"Overdracht {transfer_id} is geaccepteerd")).to_be_visible()
    await _axe(page, "werkbak after accepting")
    again = await page.request.post(
        f"{rotterdam.url}/offers/{transfer_id}/accept", form={"csrf": csrf or ""}, max_redirects=0
    )
    assert again.status == 409
    assert "al beantwoord" in await again.text()

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
        log = await processing_log.entries(store, subject=second_id)
        assert [(e.user_name, e.activity) for e in reversed(log)] == [
            ("anna", "dossier_viewed"),
            ("anna", "transfer_rejected"),
        ]
    finally:
        await store.close()

    # Den Haag sees the acceptance and completes.
    await page.get_by_role("button", name="Uitloggen").click()
    await _log_in(page, den_haag, "bas")
    await _reload_until(page, "geaccepteerd")
    await _reload_until(page, "afgewezen")
    await _axe(page, "werkbak (offerer)")
    await page.get_by_role("button", name=f"Overdracht {transfer_id} afronden").click()
    await expect(page.get_by_text(f"Overdracht {transfer_id} is afgerond")).to_be_visible()
    await _reload_until(page, "afgerond")
    await _axe(page, "werkbak after completing")
    for town in (den_haag, rotterdam):
        for proc in town.processes:
            assert proc.returncode is None, f"a process of {town.code} stopped"
