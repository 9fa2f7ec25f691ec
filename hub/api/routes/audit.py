from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from hub import audit, operator_actions
from hub.api.deps import MAX_ID, CurrentPrincipal, DbDep, Operator, SessionDep, SettingsDep
from hub.api.errors import problems
from hub.operator_actions import Actor

router = APIRouter(tags=["audit"])


class AuditItem(BaseModel):
    """One record, with the fields of Logboek dataverwerkingen: `time` is the operation's
    start, `activity` its name; the last four are empty on records written before them."""

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
    chain: str = Field(description="The hash chain the record is on: `tenant:<code>`, `hub` or `legacy`")
    hash: str
    parent_span_id: str | None = Field(None, description="The sender's span that caused this operation")
    end_time: datetime | None = None
    status_code: int | None = Field(None, description="0 unknown, 1 ok, 2 error")
    processing_activity_id: str | None = Field(None, description="URN of the processing activity")


class Replayed(BaseModel):
    status: Literal["replayed"]


class DiscardIn(BaseModel):
    reason: Annotated[
        str,
        Field(
            min_length=3,
            max_length=200,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="Why it will not be replayed (kept with it; no personal data)",
        ),
    ]


class Discarded(BaseModel):
    status: Literal["discarded"]


class ChainItem(BaseModel):
    """One chain of the log, verified on its own."""

    chain: str = Field(
        description="Its key: `tenant:<code>` (the records about one tenant), `hub` (about "
        "several tenants or none) or `legacy` (the one chain of the records from before)"
    )
    intact: bool
    records: int = Field(description="Intact: its records; broken: those read up to the first bad one")
    first_bad_seq: int | None = Field(description="Its first record that does not fit")


class ChainOut(BaseModel):
    intact: bool = Field(description="Every chain verifies")
    records: int = Field(description="Records read, over all chains")
    first_bad_seq: int | None = Field(description="The first bad record of the first broken chain")
    broken: list[str] = Field(description="The keys of the chains that do not verify")
    chains: list[ChainItem]


@router.get(
    "/audit", summary="Processing log records about you (operator: all)", responses=problems(401, 422)
)
async def list_audit(
    s: SessionDep, who: CurrentPrincipal, limit: int = Query(100, ge=1, le=1000)
) -> list[AuditItem]:
    rows = await audit.records_for(s, who.tenant, limit)
    return [AuditItem.model_validate(r, from_attributes=True) for r in rows]


@router.get("/audit/verify", summary="Recompute every hash chain (operator)", responses=problems(401, 403))
async def verify_audit(db: DbDep, op: Operator) -> ChainOut:
    """Each chain (one per tenant, one for the hub) on its own: a broken one is named in
    `broken` while the others still verify. The result is recorded in the hub's chain too
    (committed before the answer), so the console shows the last verification."""
    async with db.session() as s, s.begin():
        report = await operator_actions.verify_chain(s, Actor.token(op.token_id))
    return ChainOut(
        intact=report.intact,
        records=report.records,
        first_bad_seq=report.first_bad_seq,
        broken=[c.key or "" for c in report.broken],
        chains=[
            ChainItem(chain=c.key or "", intact=c.intact, records=c.records, first_bad_seq=c.first_bad_seq)
            for c in report.chains
        ],
    )


@router.post(
    "/dead-letters/{dl_id}/replay",
    status_code=202,
    summary="Send a dead letter to the router again (operator)",
    responses=problems(400, 401, 403, 404, 422, 503),
)
async def replay(
    dl_id: Annotated[int, Path(ge=0, le=MAX_ID)], db: DbDep, settings: SettingsDep, op: Operator
) -> Replayed:
    await operator_actions.replay(settings, db, Actor.token(op.token_id), dl_id)
    return Replayed(status="replayed")


@router.post(
    "/dead-letters/{dl_id}/discard",
    summary="Discard a dead letter that will not be replayed, with the reason (operator)",
    description="Its kept body is dropped; size and SHA-256 stay. A replayed or already "
    "discarded dead letter is refused (409 `discard_refused`); a reason that looks like it holds "
    "a BSN is refused (422 `personal_data_in_envelope`).",
    responses=problems(400, 401, 403, 404, 409, 422),
)
async def discard(
    dl_id: Annotated[int, Path(ge=0, le=MAX_ID)], body: DiscardIn, s: SessionDep, op: Operator
) -> Discarded:
    await operator_actions.discard(s, Actor.token(op.token_id), dl_id, body.reason)
    return Discarded(status="discarded")
