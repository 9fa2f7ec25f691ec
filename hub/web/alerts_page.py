"""The console's alerts: the banner every page polls (htmx) and the list at /alerts. Read-only:
an alert clears itself when its condition goes away (hub.alerts)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from hub import alerts
from hub.store.db import Database
from hub.web import pages

HISTORY = 100  # alerts shown on the list, open and cleared


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def add_routes(console: FastAPI, operator: Callable[[Request], str]) -> None:
    """Add the alert pages; `operator` is the console's logged-in-operator dependency."""
    login = [Depends(operator)]

    @console.get("/alerts", response_class=HTMLResponse, dependencies=login)
    async def alert_list(request: Request) -> Response:
        async with _db(request).session() as s:
            current = await alerts.open_alerts(s)
            history = [a for a in await alerts.recent(s, HISTORY) if a.cleared_at is not None]
        return pages.render(request, "alerts.html", current=current, history=history)

    @console.get("/alerts/banner", response_class=HTMLResponse, dependencies=login)
    async def alert_banner(request: Request) -> Response:
        """The fragment the banner of every page polls."""
        async with _db(request).session() as s:
            current = await alerts.open_alerts(s)
        return pages.render(request, "alerts_banner.html", current=current)
