"""Transfer status (metadata only): a tenant sees its own transfers and their timelines; the
operator sees counts per state and the transfers that are stuck, never anyone's contents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from hub.api.deps import MAX_ID, CurrentTenant, Operator, SessionDep
from hub.api.errors import problems
from hub.registry import TEXT_PATTERN
from hub.workflows import transfers
from schemas.transfers import State

router = APIRouter(tags=["transfers"])


class TransferItem(BaseModel):
    transfer_id: str
    offerer: str
    receiver: str
    state: str
    offered_at: datetime
    deadline_at: datetime
    reminded_at: datetime | None
    updated_at: datetime
    closed_at: datetime | None
    delivery_failed: bool = Field(
        False, description="A party could not open the latest step (it sent `delivery.failed`)."
    )


class StepItem(BaseModel):
    step: str
    actor: str
    acted_for: str | None
    at: datetime
    event_id: str


class TransferDetail(TransferItem):
    timeline: list[StepItem]


class StuckItem(TransferItem):
    waiting_for: Literal["receiver", "offerer"]
    days_waiting: int


def _item(v: transfers.TransferView) -> TransferItem:
    return TransferItem(**v.__dict__)


@router.get(
    "/transfers",
    summary="Your transfers, offered or received (a bureau: also its members')",
    responses=problems(401, 403, 422),
)
async def list_transfers(
    s: SessionDep,
    who: CurrentTenant,
    role: Literal["all", "offerer", "receiver"] = "all",
    state: State | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> list[TransferItem]:
    assert who.tenant is not None
    views = await transfers.list_for(s, who.tenant, role=role, state=state, limit=limit, offset=offset)
    return [_item(v) for v in views]


@router.get(
    "/transfers/{transfer_id}",
    summary="One transfer of yours with its timeline",
    responses=problems(401, 403, 404, 422),
)
async def get_transfer(
    transfer_id: Annotated[str, Path(pattern=TEXT_PATTERN)], s: SessionDep, who: CurrentTenant
) -> TransferDetail:
    assert who.tenant is not None
    view, steps = await transfers.get_for(s, who.tenant, transfer_id)
    return TransferDetail(**view.__dict__, timeline=[StepItem(**x.__dict__) for x in steps])


@router.get("/transfer-counts", summary="Transfers per state (operator)", responses=problems(401, 403))
async def transfer_counts(s: SessionDep, _op: Operator) -> dict[str, int]:
    return await transfers.counts(s)


@router.get(
    "/transfers-stuck",
    summary="Open transfers without a step for `days` days (operator)",
    responses=problems(401, 403, 422),
)
async def stuck_transfers(
    s: SessionDep,
    _op: Operator,
    days: int = Query(7, ge=0, le=3650),
    limit: int = Query(100, ge=1, le=1000),
) -> list[StuckItem]:
    now = datetime.now(UTC)
    return [
        StuckItem(
            **v.__dict__,
            waiting_for="receiver" if v.state == "offered" else "offerer",
            days_waiting=(now - v.updated_at).days,
        )
        for v in await transfers.stuck(s, now, days, limit)
    ]
