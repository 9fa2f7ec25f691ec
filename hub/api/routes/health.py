from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hub import health as health_checks
from hub.api.deps import DbDep, SettingsDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str = Field(description="`ok`, or what is wrong (not migrated, unreachable)")
    broker: str = Field(description="`ok`, or what is wrong (unreachable)")


@router.get(
    "/health",
    summary="Broker and database status",
    response_model=Health,
    responses={503: {"model": Health, "description": "The broker or the database is not ok"}},
)
async def health(db: DbDep, settings: SettingsDep) -> JSONResponse:
    checks = await health_checks.check(db, settings)
    healthy = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if healthy else "degraded", **checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
