from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from hub.api.deps import DbDep, SettingsDep
from hub.broker.connection import open_connection
from hub.store.db import head_revisions

router = APIRouter(tags=["health"])


@router.get("/health", summary="Broker and database status")
async def health(db: DbDep, settings: SettingsDep) -> JSONResponse:
    checks: dict[str, Any] = {}
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
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", **checks}, status_code=200 if healthy else 503
    )
