from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from hub import audit
from hub.api.deps import MAX_ID, CurrentPrincipal, DbDep, Operator, SessionDep, SettingsDep
from hub.replay import replay_dead_letter

router = APIRouter(tags=["audit"])


class AuditItem(BaseModel):
    seq: int
    time: datetime
    trace_id: str | None
    span_id: str | None
    activity: str
    actor: str
    subject_ref: str | None
    sender: str | None
    recipients: list[str]
    outcome: str
    hash: str


class ChainOut(BaseModel):
    intact: bool
    records: int
    first_bad_seq: int | None


@router.get("/audit", summary="Processing log records about you (operator: all)")
async def list_audit(
    s: SessionDep, who: CurrentPrincipal, limit: int = Query(100, ge=1, le=1000)
) -> list[AuditItem]:
    rows = await audit.records_for(s, who.tenant, limit)
    return [AuditItem.model_validate(r, from_attributes=True) for r in rows]


@router.get("/audit/verify", summary="Recompute the hash chain (operator)")
async def verify_audit(s: SessionDep, _op: Operator) -> ChainOut:
    report = await audit.verify(s)
    return ChainOut(intact=report.intact, records=report.records, first_bad_seq=report.first_bad_seq)


@router.post(
    "/dead-letters/{dl_id}/replay",
    status_code=202,
    summary="Send a dead letter to the router again (operator)",
)
async def replay(
    dl_id: Annotated[int, Path(ge=0, le=MAX_ID)], db: DbDep, settings: SettingsDep, _op: Operator
) -> dict[str, str]:
    await replay_dead_letter(settings, db, dl_id)
    return {"status": "replayed"}
