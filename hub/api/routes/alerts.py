"""Alerts over HTTP: a tenant's connector reports the health of its case system's webhook
(`POST /tenants/me/health`), and the operator lists the alerts (`GET /alerts`). The rules are
`hub.alerts`; delivery is `hub.alert_watch`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from hub import alerts
from hub.api.deps import CurrentTenant, Operator, SessionDep
from hub.api.errors import problems
from hub.store.models import Alert

router = APIRouter(tags=["alerts"])


class HealthReport(BaseModel):
    """What a connector says about delivering to its case system. Counts and an HTTP status
    only: nothing the case system wrote, so never personal data."""

    model_config = ConfigDict(extra="forbid")

    webhook: Literal["failing", "ok"] = Field(
        description="`failing`: deliveries keep failing or an outbox item is parked; `ok`: "
        "delivering again and nothing parked."
    )
    parked: int = Field(0, ge=0, le=1_000_000, description="Outbox items parked now.")
    failures: int = Field(0, ge=0, le=1_000_000, description="Failed attempts in a row.")
    status: int | None = Field(
        None, ge=100, le=599, description="The webhook's last HTTP status, if it answered."
    )


class HealthOut(BaseModel):
    alert: Literal["open", "none"] = Field(description="Whether a `webhook_failing` alert is open now.")
    alert_id: int | None = None


class AlertOut(BaseModel):
    id: int
    tenant: str
    kind: str
    detail: str
    since: datetime
    raised_at: datetime
    cleared_at: datetime | None


def _detail(report: HealthReport) -> str:
    if report.webhook == "ok":
        return "delivering again"
    parts = [f"HTTP {report.status}" if report.status is not None else "no answer"]
    if report.failures:
        parts.append(f"{report.failures} failures in a row")
    if report.parked:
        parts.append(f"{report.parked} parked")
    return "the case system's webhook is failing: " + ", ".join(parts)


@router.post(
    "/tenants/me/health",
    summary="Report the health of this tenant's webhook delivery (raises or clears an alert)",
    responses=problems(400, 401, 403, 422),
)
async def report_health(body: HealthReport, s: SessionDep, who: CurrentTenant, request: Request) -> HealthOut:
    assert who.tenant is not None
    alert = await alerts.report_webhook(s, who.tenant, body.webhook == "failing", _detail(body))
    watch = getattr(request.app.state, "alert_watch", None)
    if watch is not None:
        watch.wake()  # delivered after this transaction commits, within moments
    if alert is None:
        return HealthOut(alert="none")
    return HealthOut(alert="open", alert_id=alert.id)


def _out(a: Alert) -> AlertOut:
    assert a.raised_at is not None
    return AlertOut(
        id=a.id,
        tenant=a.tenant,
        kind=a.kind,
        detail=a.detail,
        since=a.since,
        raised_at=a.raised_at,
        cleared_at=a.cleared_at,
    )


@router.get("/alerts", summary="Alerts, newest first (operator)", responses=problems(401, 403, 422))
async def list_alerts(
    s: SessionDep,
    _op: Operator,
    state: Annotated[Literal["open", "all"], Query(description="`open`: not cleared yet")] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertOut]:
    rows = await alerts.open_alerts(s) if state == "open" else await alerts.recent(s, limit)
    return [_out(a) for a in rows[:limit]]
