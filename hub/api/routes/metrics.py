"""GET /metrics: Prometheus text exposition. The process's counters and histograms (the
router's, when it runs in this process; HTTP and runtime figures of prometheus-client) and
the gauges `hub.gauges` computes on each scrape.

Open unless `INBEELD_METRICS_TOKEN` is set; then a scraper presents it as a bearer token (an
operator's API token is not asked for: a scraper should hold no power over the hub)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from hub.api.deps import SettingsDep
from hub.api.errors import problems
from hub.gauges import HubGauges

router = APIRouter(tags=["metrics"])
_bearer = HTTPBearer(auto_error=False, description="INBEELD_METRICS_TOKEN, when the hub sets one.")


def scrape_registry(gauges: HubGauges) -> CollectorRegistry:
    """A registry of its own for the app's gauges (the default one holds the counters, shared
    by every app in the process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(gauges)
    return registry


async def _scraper(
    settings: SettingsDep, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> None:
    token = settings.metrics_token
    if token is None:
        return
    given = creds.credentials if creds else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "/metrics needs the bearer token INBEELD_METRICS_TOKEN names",
            headers={"WWW-Authenticate": "Bearer"},
        )


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition)",
    response_class=Response,
    dependencies=[Depends(_scraper)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, **problems(401)},
)
async def metrics(request: Request) -> Response:
    gauges: HubGauges = request.app.state.gauges
    await gauges.refresh()
    body = generate_latest(REGISTRY) + generate_latest(request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
