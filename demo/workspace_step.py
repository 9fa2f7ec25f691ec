"""Demo step: the officers' workspaces of Den Haag and Rotterdam, each in its own house style.

Each tenant's workspace (`connectors.workspace`, what `inbeeld-connector serve` runs) is served
on 127.0.0.1 over the tenant's demo store (its register, the offers it kept) and the hub API,
with the theme of its `[workspace]` configuration: Den Haag's tokens for Den Haag, Utrecht's for
Rotterdam. A demo officer logs in and the werkbak, the register and (Rotterdam) the received
dossier are saved as PNGs into `demo-out/workspace/<code>/`. Like the console's, the
screenshots need Playwright and a Chromium; without them the step says what is missing."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

from connectors import accounts
from connectors.config import parse_config
from connectors.hub_api import HubApi
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.workspace import create_workspace
from demo.console_step import PAGE_TIMEOUT_MS, serve_app
from demo.context import DemoContext
from demo.support import hub_transport, keystore_for, tenant_dir, tenant_token

__all__ = ["THEMES", "step_workspaces"]

LOGIN = "demo-officer"
THEMES = {"GM0518": "denhaag", "GM0599": "utrecht"}


async def _screenshots(
    url: str, password: str, pages: list[tuple[str, str]], out: Path
) -> list[dict[str, Any]]:
    """Log in and save each (name, path) of the workspace as a PNG, with what the page showed."""
    from playwright.async_api import async_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    out.mkdir(parents=True, exist_ok=True)
    saved: list[dict[str, Any]] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = await browser.new_context(locale="nl-NL", viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            await page.goto(f"{url}/login")
            await page.fill("#name", LOGIN)
            await page.fill("#password", password)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{url}/")
            for number, (name, path) in enumerate(pages, 1):
                await page.goto(url + path)
                target = out / f"{number:02d}-{name}.png"
                await page.screenshot(path=str(target), full_page=True)
                saved.append(
                    {
                        "file": target,
                        "heading": (await page.inner_text("h1")).strip(),
                        "classes": (await page.get_attribute("html", "class") or "").split(),
                    }
                )
        finally:
            await browser.close()
    return saved


def _missing() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[demo]')"
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        return "no Chromium on this machine (apt-get install chromium)"
    return None


async def step_workspaces(ctx: DemoContext) -> None:
    """Serve each workspace in its theme, log in as a demo officer, save its pages."""
    missing = _missing()
    if missing is not None:
        ctx.console.print(f"[yellow]workspace screenshots skipped:[/] {missing}")
        ctx.results["workspace"] = {"skipped": missing}
        return
    transport = hub_transport(ctx)
    transfer_id = ctx.results.get("transfer", {}).get("transfer_id")
    results: dict[str, Any] = {}
    for code, theme in THEMES.items():
        folder = tenant_dir(ctx, code)
        config = parse_config(
            {
                "tenant": code,
                "broker": {"url": "amqp://127.0.0.1:5672/unused", "username": "unused"},
                "store": {"path": "store.db"},
                "workspace": {"theme": theme},
            },
            folder,
        )
        keystore = keystore_for(ctx, code)
        store = await LocalStore.open(config.store.path, keystore)
        api = HubApi("http://hub", await tenant_token(ctx, code, "demo workspace"), transport=transport)
        try:
            password = secrets.token_urlsafe(18)
            await accounts.add(store, LOGIN, "officer", password)
            services = ConnectorServices(config, keystore=keystore, store=store, hub_api=api)
            app = create_workspace(services, theme=config.workspace.theme)
            pages = [("werkbak", "/"), ("register", "/register")]
            if code == "GM0599" and transfer_id:
                pages.append(("dossier", f"/offers/{transfer_id}"))
            async with serve_app(app, 0) as url:
                saved = await _screenshots(url, password, pages, ctx.out / "workspace" / code)
        finally:
            await api.aclose()
            await store.close()
        results[code] = {
            "theme": config.workspace.theme,
            "pages": [{**s, "file": str(s["file"].relative_to(ctx.out))} for s in saved],
        }
        ctx.console.print(
            f"{ctx.names[code]}'s workspace ({theme}): {', '.join(s['file'].name for s in saved)}"
            f" in {ctx.out / 'workspace' / code}"
        )
    ctx.results["workspace"] = results
