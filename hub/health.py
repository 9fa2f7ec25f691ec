"""Is the hub's footing sound: the database reachable and migrated, the broker reachable.
One answer per dependency, `ok` or what is wrong; GET /health and the console show it."""

from __future__ import annotations

import asyncio

from hub.broker.connection import open_connection
from hub.broker.management import Management
from hub.config import Settings
from hub.store.db import Database, head_revisions
from schemas.names import ROUTER_QUEUE


async def check(db: Database, settings: Settings) -> dict[str, str]:
    """{"database": ..., "broker": ...}, each `ok` or the trouble (never a password)."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(db.ping(), 5)
        revision = await db.current_revision()
        checks["database"] = "ok" if revision == head_revisions() else "not migrated: run `inbeeld migrate`"
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    try:
        conn = await open_connection(
            settings.amqp_url_for(), timeout=5, ssl_context=settings.amqp_ssl_context()
        )
        await conn.close()
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"unreachable ({type(exc).__name__})"
    return checks


async def routers_alive(mgmt: Management, vhost: str) -> int:
    """Routers consuming now: the consumers on the routers' competing-consumer queue, as the
    broker counts them. A router that dies loses its AMQP channel and so its consumer at once;
    one that hangs keeps it only until the broker's heartbeat gives up on its connection."""
    queue = await mgmt.queue(vhost, ROUTER_QUEUE)
    return int((queue or {}).get("consumers") or 0)
