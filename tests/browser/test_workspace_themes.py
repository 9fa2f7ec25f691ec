"""The workspace's login page in a real browser under each NL Design System theme
(`[workspace] theme`): the theme's tokens reach the page (its colours differ from Utrecht's, and
Utrecht's footer image does not carry over)
and axe-core finds no serious or critical violation, colour contrast included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page

from connectors.config import parse_config
from connectors.keystore import Keystore
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.workspace import create_workspace
from tests.browser.conftest import axe_violations
from tests.utils.api import served
from webui import assets

pytestmark = pytest.mark.browser

# A colour each theme gives the page: the primary button's background.
BUTTON = "() => getComputedStyle(document.querySelector('.utrecht-button--primary-action')).backgroundColor"

# Utrecht's branding that a municipal theme must not inherit: the footer's red diagonal.
FOOTER = "() => getComputedStyle(document.querySelector('.utrecht-page-footer')).backgroundImage"


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[ConnectorServices]:
    config = parse_config(
        {
            "tenant": "GM0518",
            "broker": {"url": "amqp://127.0.0.1:5672/nothing", "username": "nobody"},
            "store": {"path": "connector.db"},
        },
        tmp_path,
    )
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase="workspace test", scrypt_n=2**14)
    store = await LocalStore.open(config.store.path, keystore)
    try:
        yield ConnectorServices(config, keystore=keystore, store=store)
    finally:
        await store.close()


async def test_the_login_page_under_each_theme_passes_axe(page: Page, services: ConnectorServices) -> None:
    buttons: dict[str, str] = {}
    for theme in assets.THEMES:
        app = create_workspace(services, secret="a test secret of the workspace", theme=theme)
        async with served(app) as url:
            for lang in ("nl", "en"):
                await page.goto(f"{url}/login?lang={lang}")
                classes = (await page.get_attribute("html", "class") or "").split()
                assert f"{theme}-theme" in classes, theme
                assert await axe_violations(page) == [], (theme, lang)
            buttons[theme] = await page.evaluate(BUTTON)
            footer = await page.evaluate(FOOTER)
            assert (footer == "none") == (theme != "utrecht"), (theme, footer)
    assert len(set(buttons.values())) == len(buttons), buttons
