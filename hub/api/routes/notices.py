"""Neighbour notices as the hub knows them (metadata only; see hub.workflows.notices)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.api.deps import CurrentPrincipal, Operator, SessionDep
from hub.api.errors import problems
from hub.store.models import Notice, NoticeAnswer

router = APIRouter(tags=["notices"])
_SCAN = 20_000


class NoticeItem(BaseModel):
    notice_id: str
    role: Literal["asked", "received"]
    asker: str
    addressed: list[str]
    recipients: list[str]  # for a notice you received: only you
    state: str
    deadline: datetime
    created_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    answered_by: list[str]  # for a notice you received: you, if you answered


async def _answers(s: AsyncSession, notices: list[Notice]) -> dict[tuple[str, str], list[str]]:
    if not notices:
        return {}
    rows = await s.execute(
        select(NoticeAnswer.asker, NoticeAnswer.notice_id, NoticeAnswer.responder).where(
            NoticeAnswer.notice_id.in_({n.notice_id for n in notices})
        )
    )
    out: dict[tuple[str, str], list[str]] = {}
    for asker, notice_id, responder in rows:
        out.setdefault((asker, notice_id), []).append(responder)
    return out


@router.get(
    "/notices", summary="Notices you asked or received, with their state", responses=problems(401, 403, 422)
)
async def list_notices(
    s: SessionDep,
    who: CurrentPrincipal,
    role: Literal["all", "asked", "received"] = "all",
    state: Literal["open", "closed", "expired"] | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[NoticeItem]:
    if who.tenant is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "the operator sees counts only: GET /notice-counts")
    me = who.tenant
    # JSON membership differs per backend: filter `received` in Python over the newest
    # _SCAN notices (hundreds a day nationally, so weeks of them).
    q = select(Notice).order_by(Notice.created_at.desc()).limit(_SCAN)
    if state is not None:
        q = q.where(Notice.state == state)
    if role == "asked":
        q = q.where(Notice.asker == me).limit(limit)
    candidates = list(await s.scalars(q))
    mine = [
        n
        for n in candidates
        if (role != "received" and n.asker == me) or (role != "asked" and me in n.recipients)
    ][:limit]
    answers = await _answers(s, mine)
    items = []
    for n in mine:
        asked = n.asker == me
        answered = answers.get((n.asker, n.notice_id), [])
        items.append(
            NoticeItem(
                notice_id=n.notice_id,
                role="asked" if asked else "received",
                asker=n.asker,
                addressed=list(n.addressed),
                recipients=list(n.recipients) if asked else [me],
                state=n.state,
                deadline=n.deadline,
                created_at=n.created_at,
                closed_at=n.closed_at,
                close_reason=n.close_reason,
                answered_by=sorted(set(answered)) if asked else [r for r in set(answered) if r == me],
            )
        )
    return items


class NoticeCounts(BaseModel):
    by_state: dict[str, int]
    answers: int
    askers: int


@router.get("/notice-counts", summary="Notices per state (operator)", responses=problems(401, 403))
async def notice_counts(s: SessionDep, _op: Operator) -> NoticeCounts:
    rows = await s.execute(select(Notice.state, func.count()).group_by(Notice.state))
    by_state = {"open": 0, "closed": 0, "expired": 0}
    by_state.update({state: int(n) for state, n in rows})
    answers = await s.scalar(select(func.count()).select_from(NoticeAnswer))
    askers = await s.scalar(select(func.count(func.distinct(Notice.asker))))
    return NoticeCounts(by_state=by_state, answers=int(answers or 0), askers=int(askers or 0))
