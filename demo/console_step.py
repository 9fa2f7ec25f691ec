"""The demo's last step: the hub operator's console on the demo's hub. It serves the console
on 127.0.0.1, creates a login for the demo, saves a screenshot of every page in the console's
navigation into `demo-out/console/` and, with `inbeeld demo --serve`, keeps the hub and its
console running (until Ctrl-C) so the story can be looked at in a browser.

Screenshots need Playwright (`pip install -e '.[demo]'`) and a Chromium (Debian: `apt-get
install chromium`); without them the step says what is missing and the console is still
served with `--serve`."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Any

import uvicorn

from demo.context import DemoContext
from hub import operator_actions
from hub.api.app import create_app
from hub.operator_actions import Actor

__all__ = ["LOGIN", "PAGE_TIMEOUT_MS", "serve_app", "step_console"]

LOGIN = "demo"
PAGE_TIMEOUT_MS = 15_000


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the demo's command owns Ctrl-C

    @property
    def url(self) -> str:
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def serve_app(app: Any, port: int) -> AsyncIterator[str]:
    """`app` (ASGI) served on 127.0.0.1 (`port` 0: any free one); its address."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it could not start (e.g. the port is taken)
                raise RuntimeError("the server stopped before it started")
            await asyncio.sleep(0.05)
        yield server.url
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def served(ctx: DemoContext, port: int) -> AsyncIterator[str]:
    """The hub's API and console for the demo's hub, on 127.0.0.1 (`port` 0: any free one)."""
    async with serve_app(create_app(ctx.settings, ctx.db), port) as url:
        yield f"{url}/console"


async def screenshots(console_url: str, password: str, out: Path) -> list[Path] | str:
    """Log in and save every page of the console's navigation as a PNG; or why it could not."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        return "Playwright is not installed (pip install -e '.[demo]')"
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        return "no Chromium on this machine (apt-get install chromium)"
    out.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = await browser.new_context(locale="nl-NL", viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            await page.goto(f"{console_url}/login")
            await page.fill("#name", LOGIN)
            await page.fill("#password", password)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{console_url}/")
            links = await page.eval_on_selector_all(
                "nav .utrecht-nav-list__link", "links => links.map(a => a.getAttribute('href'))"
            )
            for number, href in enumerate(dict.fromkeys(links), 1):
                await page.goto(f"{console_url.removesuffix('/console')}{href}")
                name = href.removeprefix("/console").strip("/") or "overview"
                target = out / f"{number:02d}-{name.replace('/', '-')}.png"
                await page.screenshot(path=str(target), full_page=True)
                saved.append(target)
        finally:
            await browser.close()
    return saved


async def step_console(ctx: DemoContext) -> None:
    """Serve the console, log in as the demo's operator, save its pages; hold with --serve."""
    password = secrets.token_urlsafe(18)
    async with ctx.db.session() as s, s.begin():
        await operator_actions.add_login(s, Actor.cli(), LOGIN, password)
    async with served(ctx, ctx.serve_port if ctx.serve else 0) as url:
        saved = await screenshots(url, password, ctx.out / "console")
        if isinstance(saved, str):
            ctx.console.print(f"[yellow]console screenshots skipped:[/] {saved}")
            ctx.results["console"] = {"screenshots": [], "skipped": saved}
        else:
            ctx.console.print(
                f"console pages saved: {', '.join(p.name for p in saved)} in {ctx.out / 'console'}"
            )
            ctx.results["console"] = {"screenshots": [str(p.relative_to(ctx.out)) for p in saved]}
        if ctx.serve:
            ctx.console.print(
                f"[bold]console at {url}[/] — log in as [bold]{LOGIN}[/] with password [bold]{password}[/]"
                " (made for this demo run); Ctrl-C stops the hub"
            )
            await asyncio.Event().wait()
