"""What flows through the hub, as the operator's console shows it: events per flow and outcome,
transfers per state and the stuck ones with their timelines, notices per state, the template
catalogue per publisher, and the audit chain's last recorded verification.

Metadata only, like everything the hub keeps: event types, tenant codes, states, times and
ids. A flow is the first part of an event's type after `nl.leerplicht.` (`transfer`, `notice`,
`template`, `hub`, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import AuditRecord, LedgerEvent, Notice, PublishedTemplate, TransferStep
from hub.workflows import notices, transfers
from hub.workflows.transfers import StepView, TransferView
from schemas.envelope import TYPE_PREFIX

__all__ = [
    "NOTICE_STATES",
    "OUTCOMES",
    "VERIFY_ACTIVITY",
    "CatalogueEntry",
    "Stuck",
    "Verification",
    "catalogue_by_publisher",
    "events_by_flow",
    "flow_of",
    "last_verification",
    "notice_counts",
    "stuck_transfers",
    "transfer_counts",
]

OUTCOMES = ("routed", "rejected", "received")  # a ledger event's status
NOTICE_STATES = (notices.OPEN, notices.CLOSED, notices.EXPIRED)
VERIFY_ACTIVITY = "verify audit chain"  # what hub.operator_actions.verify_chain records


def flow_of(event_type: str) -> str:
    """`nl.leerplicht.transfer.offered` -> `transfer`; a foreign type is its own flow."""
    return event_type.removeprefix(TYPE_PREFIX).split(".", 1)[0] or event_type


async def events_by_flow(s: AsyncSession, since: datetime) -> dict[str, dict[str, int]]:
    """Events received `since`, per flow and outcome (every outcome present, zero included),
    flows sorted by name."""
    rows = await s.execute(
        select(LedgerEvent.type, LedgerEvent.status, func.count())
        .where(LedgerEvent.received_at >= since)
        .group_by(LedgerEvent.type, LedgerEvent.status)
    )
    out: dict[str, dict[str, int]] = {}
    for event_type, status, n in rows.all():
        counts = out.setdefault(flow_of(event_type), dict.fromkeys(OUTCOMES, 0))
        counts[status] = counts.get(status, 0) + int(n)
    return dict(sorted(out.items()))


async def transfer_counts(s: AsyncSession) -> dict[str, int]:
    return await transfers.counts(s)


@dataclass(frozen=True)
class Stuck:
    """An open transfer without a step for days, with its timeline."""

    transfer: TransferView
    steps: list[StepView]


async def stuck_transfers(s: AsyncSession, now: datetime, days: int, limit: int = 50) -> list[Stuck]:
    """Open transfers with no step for more than `days` days, oldest first, each with its
    timeline (one query for all the timelines)."""
    found = await transfers.stuck(s, now, days, limit)
    ids = [t.transfer_id for t in found]
    timelines: dict[str, list[StepView]] = {tid: [] for tid in ids}
    if ids:
        rows = await s.scalars(
            select(TransferStep).where(TransferStep.transfer_id.in_(ids)).order_by(TransferStep.id)
        )
        for x in rows:
            timelines[x.transfer_id].append(StepView(x.step, x.actor, x.acted_for, x.at, x.event_id))
    return [Stuck(t, timelines[t.transfer_id]) for t in found]


async def notice_counts(s: AsyncSession) -> dict[str, int]:
    """Neighbour notices per state (every state present, zero included)."""
    out: dict[str, int] = dict.fromkeys(NOTICE_STATES, 0)
    for state, n in await s.execute(select(Notice.state, func.count()).group_by(Notice.state)):
        out[state] = int(n)
    return out


@dataclass(frozen=True)
class CatalogueEntry:
    template_id: str
    version: str
    title: str
    languages: list[str]
    published_at: datetime
    withdrawn_at: datetime | None


async def catalogue_by_publisher(s: AsyncSession) -> dict[str, list[CatalogueEntry]]:
    """The template catalogue grouped by publisher, withdrawn versions included."""
    out: dict[str, list[CatalogueEntry]] = {}
    rows = await s.scalars(
        select(PublishedTemplate).order_by(
            PublishedTemplate.publisher, PublishedTemplate.template_id, PublishedTemplate.published_at
        )
    )
    for t in rows:
        out.setdefault(t.publisher, []).append(
            CatalogueEntry(
                t.template_id, t.version, t.title, list(t.languages), t.published_at, t.withdrawn_at
            )
        )
    return out


@dataclass(frozen=True)
class Verification:
    """The last verification of the audit chain on record: by whom, when, and its outcome."""

    intact: bool
    outcome: str
    actor: str
    at: datetime


async def last_verification(s: AsyncSession) -> Verification | None:
    """Every verification (console, API, `inbeeld doctor`) is itself recorded in the chain by
    hub.operator_actions.verify_chain, so the last one survives restarts and is the same on
    every API replica."""
    row = await s.scalar(
        select(AuditRecord)
        .where(AuditRecord.activity == VERIFY_ACTIVITY)
        .order_by(AuditRecord.seq.desc())
        .limit(1)
    )
    if row is None:
        return None
    return Verification(row.outcome == "intact", row.outcome, row.actor, row.time)
