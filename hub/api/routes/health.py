from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from hub.api.deps import DbDep, SettingsDep
from hub.broker.connection import open_connection
from hub.store.db import head_revisions

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
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(db.ping(), 5)
        revision = await db.current_revision()
        checks["database"] = "ok" if revision == head_revisions() else "not migrated: run `inbeeld migrate`"
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    try:
        conn = await open_connection(settings.amqp_url_for(), timeout=5)
        await conn.close()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable ({type(exc).__name__})"
    healthy = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if healthy else "degraded", **checks)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
