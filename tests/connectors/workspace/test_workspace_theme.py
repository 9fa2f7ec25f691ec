"""The workspace's NL Design System theme (`[workspace] theme`): the pages link its tokens and
carry its class over Utrecht's, the stylesheet is served, and an unknown theme is a config error
that names the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors.config import ConfigError, parse_config
from connectors.keystore import Keystore
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.workspace import create_workspace
from webui import assets

BASE = {
    "tenant": "GM0518",
    "broker": {"url": "amqp://127.0.0.1:5672/nothing", "username": "nobody"},
    "store": {"path": "connector.db"},
}


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[ConnectorServices]:
    config = parse_config(BASE, tmp_path)
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase="workspace test", scrypt_n=2**14)
    store = await LocalStore.open(config.store.path, keystore)
    try:
        yield ConnectorServices(config, keystore=keystore, store=store)
    finally:
        await store.close()


@pytest.mark.parametrize("theme", sorted(assets.THEMES))
async def test_the_login_page_wears_the_configured_theme(services: ConnectorServices, theme: str) -> None:
    app = create_workspace(services, secret="a test secret of the workspace", theme=theme)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://workspace") as web:
        page = await web.get("/login")
        assert page.status_code == 200
        html = page.text
        classes = html.split('class="', 1)[1].split('"', 1)[0].split()
        assert "utrecht-theme" in classes and f"{theme}-theme" in classes
        assert 'href="/static/vendor/utrecht-design-tokens.css"' in html
        assert 'href="/static/vendor/utrecht-component-library.css"' in html
        css = f"/static/vendor/{assets.THEMES[theme]}"
        assert f'href="{css}"' in html
        others = set(assets.THEMES.values()) - {assets.THEMES[theme], "utrecht-design-tokens.css"}
        assert not any(other in html for other in others)
        served = await web.get(css)
        assert served.status_code == 200
        assert served.headers["content-type"].startswith("text/css")
        assert f".{theme}-theme" in served.text


async def test_the_default_is_utrecht_and_an_unknown_theme_is_refused(
    services: ConnectorServices, tmp_path: Path
) -> None:
    assert parse_config(BASE, tmp_path).workspace.theme == "utrecht"
    assert parse_config({**BASE, "workspace": {"theme": "denhaag"}}, tmp_path).workspace.theme == "denhaag"
    for theme in ("amsterdam", "rotterdam", "", 1):
        with pytest.raises(ConfigError) as exc:
            parse_config({**BASE, "workspace": {"theme": theme}}, tmp_path)
        assert exc.value.field == "workspace.theme"
        assert "workspace.theme" in exc.value.message
    with pytest.raises(ConfigError) as exc:
        parse_config({**BASE, "workspace": {"theme": "rotterdam"}}, tmp_path)
    assert "licence" in exc.value.message
    with pytest.raises(ValueError, match="unknown theme"):
        create_workspace(services, theme="amsterdam")
