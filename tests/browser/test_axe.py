"""The accessibility check itself: axe-core runs in the browser and reports a serious fault."""

from __future__ import annotations

import pytest
from playwright.async_api import Page

from tests.browser.conftest import axe_violations

pytestmark = pytest.mark.browser


async def test_axe_reports_an_image_without_alternative_text(page: Page) -> None:
    await page.set_content('<!doctype html><html lang="nl"><title>t</title><main><img src="x.png"></main>')
    found = await axe_violations(page)
    assert "image-alt" in {v["id"] for v in found}
