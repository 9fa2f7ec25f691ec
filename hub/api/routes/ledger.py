from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from hub import ledger
from hub.api.deps import MAX_ID, CurrentPrincipal, CurrentTenant, Operator, SessionDep
from hub.api.errors import problems
from hub.registry import TEXT_PATTERN
from hub.store.models import DeadLetter
from schemas.errors import NotFound

router = APIRouter(tags=["ledger"])


class LedgerItem(BaseModel):
    event_id: str
    type: str
    sender: str
    recipients: list[str]
    status: str
    reason: str | None
    received_at: datetime
    routed_at: datetime | None
    subject: str | None
    sequence: int | None


class Verdict(BaseModel):
    """What the hub decided about an event you sent."""

    event_id: str
    status: Literal["pending", "routed", "rejected"] = Field(
        description="`pending`: not decided yet (still queued, or never seen: ask again); "
        "`routed`: delivered to its recipients' inboxes; `rejected`: refused, as the "
        "`hub.rejected` in your inbox says"
    )
    reason: str | None = Field(None, description="The `hub.rejected` reason code (rejected only)")
    detail: str | None = Field(None, description="The `hub.rejected` message (rejected only)")


class DeadLetterItem(BaseModel):
    id: int
    reason: str
    detail: str
    sender: str | None
    received_at: datetime
    replayed_at: datetime | None
    discarded_at: datetime | None = None
    discard_reason: str | None = None
    size: int
    sha256: str | None
    body_kept: bool  # only a signed or sealed event's body is kept (and can be replayed)


@router.get("/ledger", summary="Events you sent or received (operator: all)", responses=problems(401, 422))
async def list_ledger(
    s: SessionDep,
    who: CurrentPrincipal,
    direction: Literal["all", "sent", "received"] = "all",
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> list[LedgerItem]:
    views = await ledger.list_for(s, who.tenant, limit=limit, offset=offset, direction=direction)
    return [LedgerItem(**v.__dict__) for v in views]


@router.get("/ledger/{event_id}", summary="One event of yours", responses=problems(401, 404, 422))
async def get_ledger(
    event_id: Annotated[str, Path(pattern=TEXT_PATTERN)], s: SessionDep, who: CurrentPrincipal
) -> LedgerItem:
    view = await ledger.get_for(s, who.tenant, event_id)
    if view is None:
        raise NotFound(f"no event {event_id}")
    return LedgerItem(**view.__dict__)


@router.get(
    "/ledger/{event_id}/verdict",
    summary="The hub's verdict on an event you sent: pending, routed or rejected (and why)",
    description="For a command that waits for the outcome of what it sent, without reading "
    "the inbox (the running connector consumes it). Only the caller's own events: another "
    "tenant's event id is `pending`, like one the hub has not seen.",
    responses=problems(401, 403, 422),
)
async def get_verdict(
    event_id: Annotated[str, Path(pattern=TEXT_PATTERN, max_length=64)], s: SessionDep, who: CurrentTenant
) -> Verdict:
    assert who.tenant is not None
    found = await ledger.verdict_for(s, who.tenant, event_id)
    return Verdict(
        event_id=found.event_id,
        status=found.status,
        reason=found.reason if found.status == ledger.REJECTED else None,
        detail=found.detail if found.status == ledger.REJECTED else None,
    )


@router.get("/ledger-counts", summary="Events per status (operator)", responses=problems(401, 403))
async def ledger_counts(s: SessionDep, _op: Operator) -> dict[str, int]:
    return await ledger.counts(s)


def _dl(row: DeadLetter) -> DeadLetterItem:
    return DeadLetterItem(
        id=row.id,
        reason=row.reason,
        detail=row.detail,
        sender=row.sender,
        received_at=row.received_at,
        replayed_at=row.replayed_at,
        discarded_at=row.discarded_at,
        discard_reason=row.discard_reason,
        size=row.body_size,
        sha256=row.body_sha256,
        body_kept=bool(row.body),
    )


@router.get(
    "/dead-letters",
    summary="Messages the hub could not route (tenants: their own)",
    responses=problems(401, 422),
)
async def list_dead_letters(
    s: SessionDep, who: CurrentPrincipal, limit: int = Query(100, ge=1, le=1000)
) -> list[DeadLetterItem]:
    return [_dl(r) for r in await ledger.dead_letters(s, who.tenant, limit=limit)]


@router.get(
    "/dead-letters/{dl_id}/body",
    summary="The raw body, base64 (operator)",
    responses=problems(401, 403, 404, 422),
)
async def dead_letter_body(
    dl_id: Annotated[int, Path(ge=0, le=MAX_ID)], s: SessionDep, _op: Operator
) -> dict[str, str]:
    row = await s.get(DeadLetter, dl_id)
    if row is None:
        raise NotFound(f"no dead letter {dl_id}")
    if not row.body:
        raise NotFound(f"the body of dead letter {dl_id} was not kept (not a signed or sealed event)")
    return {"body_b64": base64.b64encode(row.body).decode()}
