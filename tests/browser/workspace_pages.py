"""What the workspace's browser tests do on its pages again and again: check a page with axe,
log in, and reload until something has arrived."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from tests.browser.conftest import axe_violations
from tests.utils.workspaces import PASSWORD, Municipality

DOSSIER: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8")
)


async def axe(page: Page, what: str) -> None:
    """No violation axe-core finds on the page (`what` names it in the failure)."""
    found = await axe_violations(page)
    assert found == [], (what, found)


async def log_in(page: Page, town: Municipality, name: str) -> None:
    """Log in to `town`'s workspace as `name` (the login page checked with axe on the way)."""
    await page.goto(town.url + "/")
    await expect(page.get_by_role("heading", name="Inloggen")).to_be_visible()
    await axe(page, "login")
    await page.get_by_label("Naam").fill(name)
    await page.get_by_label("Wachtwoord").fill(PASSWORD)
    await page.get_by_role("button", name="Inloggen").click()
    await expect(page.get_by_role("heading", name="Werkbak")).to_be_visible()


async def reload_until(page: Page, text: str | re.Pattern[str], timeout: float = 45) -> None:
    """Reload the page until it shows `text` (what another workspace did has arrived)."""
    end = asyncio.get_running_loop().time() + timeout
    while await page.get_by_text(text).count() == 0:
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"never showed {text!r}: {await page.content()}")
        await asyncio.sleep(0.5)
        await page.reload()
