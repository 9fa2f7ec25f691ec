"""The FastAPI application. Routes are thin; services live in hub.* modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from hub.alert_watch import AlertWatch
from hub.api import errors, nesting
from hub.api.routes import (
    alerts,
    audit,
    contract,
    health,
    inbox,
    keys,
    ledger,
    metrics,
    notices,
    operator,
    templates,
    tenants,
    transfers,
)
from hub.config import Settings
from hub.gauges import HubGauges
from hub.store.db import Database
from hub.web.console import create_console
from schemas import tracing

DESCRIPTION = """Inbeeld hub API: tenants, groups, ledger and dead letters.

Authenticate with `Authorization: Bearer inb_...` (an operator or a tenant token).
Tenants see only their own records. The message contract (AsyncAPI) is served at
[/asyncapi.yaml](/asyncapi.yaml)."""


def create_app(settings: Settings, db: Database | None = None) -> FastAPI:
    owns_db = db is None
    database = db or Database(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watch = AlertWatch(settings, database)  # alerts are evaluated by the API process
        app.state.alert_watch = watch
        watch.start()
        yield
        await watch.stop()
        app.state.alert_watch = None
        if owns_db:
            await database.close()

    app = FastAPI(title="Inbeeld hub", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.db = database
    app.state.gauges = HubGauges(settings, database)
    app.state.metrics_registry = metrics.scrape_registry(app.state.gauges)
    errors.install(app)
    if tracing.recording():  # a span per request; nothing at all when traces are off
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=tracing.provider(), exclude_spans=["receive", "send"]
        )
    app.add_middleware(nesting.BoundedJsonBodies)  # bound nesting before FastAPI's json.loads
    for module in (
        health,
        tenants,
        ledger,
        audit,
        keys,
        operator,
        contract,
        notices,
        transfers,
        templates,
        metrics,
        alerts,
        inbox,
    ):
        app.include_router(module.router)
    app.mount("/console", create_console(settings, database), name="console")  # the operator's web pages
    return app
