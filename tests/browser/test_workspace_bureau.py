"""A regional bureau's workspace in a real browser, with a real hub and three connectors
(Den Haag, Rotterdam and the bureau that acts for Rotterdam, each running `inbeeld-connector
run`; the bureau also `serve`): the bureau's werkbak lists the transfers of its member. An offer
to Rotterdam is sealed to Rotterdam's keys: its page in the bureau's workspace says so plainly
and shows no pupil data. A plain officer of the bureau may look but not answer for the member;
the bureau officer accepts for Rotterdam (once: a second submit does nothing), and completes
an offer Rotterdam made once Den Haag accepted it. The hub records the bureau acting for
Rotterdam; the bureau's processing log names its officer. axe-core on every page."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from connectors import processing_log
from connectors.transfers import new_transfer_id
from hub import provisioning, registry
from hub.services import amqp_channel, management
from hub.workflows.transfers import bureau_group
from tests.browser.workspace_pages import DOSSIER, axe, log_in, reload_until
from tests.utils.hubs import RunningHub
from tests.utils.workspaces import PASSWORD, Municipality, workspace_world

pytestmark = [pytest.mark.browser, pytest.mark.broker, pytest.mark.slow]

OFFERER, MEMBER, BUREAU = "GM0518", "GM0599", "rblzuid"


@pytest.fixture(scope="module")
async def towns(
    tmp_session: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Municipality]]:
    async def bureau(hub: RunningHub) -> None:
        async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
            async with hub.db.session() as s, s.begin():
                await registry.add_tenant(s, BUREAU, "Regionaal Bureau Leerplicht Zuid", "regional_bureau")
                await registry.add_group(s, bureau_group(BUREAU), [MEMBER], "the members rblzuid acts for")
                hub.creds[BUREAU] = await provisioning.provision_tenant(
                    s, mgmt, channel, hub.settings, BUREAU
                )

    codes = (OFFERER, MEMBER, BUREAU)
    async with workspace_world(
        "bureau", tmp_session, tmp_path_factory, codes, before=bureau, serve=(BUREAU,)
    ) as found:
        yield found


async def _offer(town: Municipality, to: str, tmp_path: Path) -> str:
    transfer_id = new_transfer_id(town.code)
    dossier_file = tmp_path / f"{transfer_id}.json"
    dossier_file.write_text(json.dumps({**DOSSIER, "transfer_id": transfer_id}), "utf-8")
    code, out = await town.cli("transfer", "offer", "--to", to, "--file", str(dossier_file))
    assert code == 0, out
    return transfer_id


async def test_a_bureau_sees_and_answers_its_members_transfers_without_reading_them(
    towns: dict[str, Municipality], page: Page, tmp_path: Path
) -> None:
    den_haag, rotterdam, bureau = towns[OFFERER], towns[MEMBER], towns[BUREAU]
    for name, role in (("bea", "bureau_officer"), ("otto", "officer")):
        code, out = await bureau.cli("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD)
        assert code == 0, out
    to_member = await _offer(den_haag, MEMBER, tmp_path)
    from_member = await _offer(rotterdam, OFFERER, tmp_path)
    code, out = await den_haag.cli("transfer", "accept", from_member)
    assert code == 0, out
    pupil = DOSSIER["pupil"]

    # A plain officer of the bureau sees the member's offer, sealed, and cannot answer it.
    await log_in(page, bureau, "otto")
    await reload_until(page, to_member)
    await expect(page.get_by_role("heading", name="Overdrachten aan aangesloten gemeenten")).to_be_visible()
    await reload_until(page, f"{OFFERER} (namens {MEMBER})")
    await expect(page.get_by_role("button", name=f"Overdracht {from_member} afronden")).to_have_count(0)
    await axe(page, "bureau werkbak (officer)")
    await page.get_by_role("link", name=f"Overdracht {to_member} voor {MEMBER} openen").click()
    await expect(page.get_by_text(f"Dit dossier is versleuteld voor {MEMBER}")).to_be_visible()
    await expect(page.get_by_text("kan alleen met de rol bureau-ambtenaar")).to_be_visible()
    await expect(page.get_by_role("button", name=f"Accepteren namens {MEMBER}")).to_have_count(0)
    await axe(page, "sealed dossier (officer)")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    refused = await page.request.post(
        f"{bureau.url}/offers/{to_member}/accept", form={"csrf": csrf or ""}, max_redirects=0
    )
    assert refused.status == 403
    await page.get_by_role("button", name="Uitloggen").click()

    # The bureau officer accepts for Rotterdam, without ever seeing the dossier.
    await log_in(page, bureau, "bea")
    await page.get_by_role("link", name=f"Overdracht {to_member} voor {MEMBER} openen").click()
    await expect(page.get_by_role("heading", name=f"Dossier van overdracht {to_member}")).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text(
        "alleen die gemeente kan het lezen, het bureau niet"
    )
    for secret in (pupil["bsn"], pupil["family_name"], DOSSIER["guardians"][0]["email"]):
        assert secret not in await page.content()
    await axe(page, "sealed dossier (bureau officer)")
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    await page.get_by_role("button", name=f"Accepteren namens {MEMBER}").click()
    await expect(
        page.get_by_text(f"Overdracht {to_member} is namens de gemeente geaccepteerd")
    ).to_be_visible()
    again = await page.request.post(
        f"{bureau.url}/offers/{to_member}/accept", form={"csrf": csrf or ""}, max_redirects=0
    )
    assert again.status == 409 and "al beantwoord" in await again.text()

    # ... and completes Rotterdam's own offer, which Den Haag accepted.
    await reload_until(page, re.compile("geaccepteerd"))
    await page.get_by_role("button", name=f"Overdracht {from_member} afronden").click()
    await expect(page.get_by_text(f"Overdracht {from_member} is afgerond")).to_be_visible()
    await axe(page, "bureau werkbak after acting")

    for transfer_id, state in ((to_member, "accepted"), (from_member, "completed")):
        code, out = await den_haag.cli("transfer", "show", transfer_id)
        assert code == 0 and state in out and BUREAU in out, out
    store = await bureau.store()
    try:
        for transfer_id, step in ((to_member, "transfer_accepted"), (from_member, "transfer_completed")):
            log = await processing_log.entries(store, subject=transfer_id)
            assert [(e.user_name, e.activity) for e in log] == [("bea", step)]
    finally:
        await store.close()
