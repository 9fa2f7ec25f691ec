"""The connector's processing log (verwerkingenlog): who did what with which transfer's dossier
in the workspace, and when. It names the person, the activity and the transfer id; never the
pupil's data, so it can be shown and exported as it is.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import insert, select

from connectors.schema import processing_log
from connectors.store import LocalStore

__all__ = ["Entry", "entries", "record"]


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float
    user_name: str
    activity: str
    subject: str
    outcome: str


async def record(store: LocalStore, user_name: str, activity: str, subject: str, outcome: str = "ok") -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(processing_log).values(
                at=time.time(), user_name=user_name, activity=activity, subject=subject, outcome=outcome
            )
        )


async def entries(store: LocalStore, subject: str | None = None, limit: int = 500) -> list[Entry]:
    query = select(processing_log).order_by(processing_log.c.seq.desc()).limit(limit)
    if subject is not None:
        query = query.where(processing_log.c.subject == subject)
    async with store.engine.connect() as conn:
        rows = await conn.execute(query)
        return [Entry(r.seq, r.at, r.user_name, r.activity, r.subject, r.outcome) for r in rows]
