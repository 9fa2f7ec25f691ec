"""The console's view of what flows through the hub: the overview's activity (events per flow
and outcome as a chart and a table, routers alive, the audit chain's last recorded
verification) and the flows page (transfers per state, the stuck ones with their timelines,
notices per state, the template catalogue per publisher). Metadata only. Each page has a
fragment route htmx polls; without JavaScript the page itself shows the same."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from hub import flows, health
from hub.config import Settings
from hub.flows import CatalogueEntry, Stuck, Verification
from hub.services import management
from hub.store.db import Database
from hub.store.models import utcnow
from hub.web import pages
from hub.web.chart import Chart, stacked_bars
from schemas.errors import InbeeldError

log = structlog.get_logger("inbeeld.console")

STUCK_DAYS = 7  # the flows page's default N: no step for this many days
MAX_STUCK_DAYS = 365
STUCK_SHOWN = 50

Operator = Callable[[Request], str]  # the console's login check: the name, or NotLoggedIn


@dataclass(frozen=True)
class Activity:
    last_hour: dict[str, dict[str, int]]  # flow -> outcome -> events
    last_day: dict[str, dict[str, int]]
    hour_chart: Chart
    day_chart: Chart
    routers: int | None  # None: the management API could not be asked
    verification: Verification | None
    at: datetime
    outcomes: tuple[str, ...] = flows.OUTCOMES


@dataclass(frozen=True)
class Flows:
    days: int
    transfers: dict[str, int]
    stuck: list[Stuck]
    notices: dict[str, int]
    catalogue: dict[str, list[CatalogueEntry]]
    at: datetime


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def activity(request: Request) -> Activity:
    """The overview's activity section (see the module doc)."""
    now = utcnow()
    async with _db(request).session() as s:
        hour = await flows.events_by_flow(s, now - timedelta(hours=1))
        day = await flows.events_by_flow(s, now - timedelta(days=1))
        verification = await flows.last_verification(s)
    settings = _settings(request)
    routers: int | None
    try:
        async with management(settings) as mgmt:
            routers = await health.routers_alive(mgmt, settings.vhost)
    except InbeeldError as exc:  # the overview stands without the broker's figures
        log.warning("console.routers_unknown", reason=exc.reason)
        routers = None
    # Every flow of the day on both charts, in the same order, so the two compare at a glance.
    hour = {flow: hour.get(flow, dict.fromkeys(flows.OUTCOMES, 0)) for flow in day} | hour
    return Activity(
        hour,
        day,
        stacked_bars(hour, flows.OUTCOMES),
        stacked_bars(day, flows.OUTCOMES),
        routers,
        verification,
        now,
    )


def parse_days(raw: str | None) -> int:
    """The flows page's N: whole days, 1 to 365; ValueError with the reason otherwise."""
    if raw is None or raw.strip() == "":
        return STUCK_DAYS
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 3 or not 1 <= int(text) <= MAX_STUCK_DAYS:
        raise ValueError(raw)
    return int(text)


async def _flows(request: Request, days: int) -> Flows:
    now = utcnow()
    async with _db(request).session() as s:
        return Flows(
            days,
            await flows.transfer_counts(s),
            await flows.stuck_transfers(s, now, days, STUCK_SHOWN),
            await flows.notice_counts(s),
            await flows.catalogue_by_publisher(s),
            now,
        )


def _days_or_error(request: Request) -> tuple[int, dict[str, Any] | None]:
    raw = request.query_params.get("days")
    try:
        return parse_days(raw), None
    except ValueError:
        return STUCK_DAYS, {"value": (raw or "")[:20], "max": MAX_STUCK_DAYS, "default": STUCK_DAYS}


def add_routes(console: FastAPI, operator: Operator) -> None:
    """The routes, on the console app; `operator` is its login check."""

    @console.get("/overview/activity", response_class=HTMLResponse)
    async def overview_activity(request: Request) -> Response:
        """The activity part of the overview htmx polls."""
        operator(request)
        return pages.render(request, "overview_activity.html", activity=await activity(request))

    @console.get("/flows", response_class=HTMLResponse)
    async def flows_page(request: Request) -> Response:
        operator(request)
        days, error = _days_or_error(request)
        raw = request.query_params.get("days", "")[:20] if error else str(days)
        return pages.render(
            request,
            "flows.html",
            status=400 if error else 200,
            flows=await _flows(request, days),
            days_error=error,
            days_field=raw,
        )

    @console.get("/flows/live", response_class=HTMLResponse)
    async def flows_live(request: Request) -> Response:
        """The part of the flows page htmx polls."""
        operator(request)
        days, error = _days_or_error(request)
        return pages.render(
            request, "flows_live.html", status=400 if error else 200, flows=await _flows(request, days)
        )
