"""Browser tests of the operator console: Playwright driving Debian's chromium (Playwright's
own browser download is not used), one browser per session, a page per test."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

AXE = Path(__file__).parent / "vendor" / "axe.min.js"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("chromium is not installed (apt-get install chromium; .ci/run does it)")
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="nl-NL")
    page = await context.new_page()
    yield page
    await context.close()


async def axe_violations(page: Page) -> list[dict[str, object]]:
    """The serious and critical accessibility violations axe-core finds on the page. axe is
    evaluated through the DevTools protocol, so the page's own CSP (no inline script) stays on."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    found = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5),
            }));
        }"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]
