"""Retained copies: every copy the hub delivered to an inbox, kept so that a tenant whose
inbox lost messages (a purge, a broker that lost its disk, a queue deleted by mistake) can have
them again (`POST /inbox/resync`).

    keep      in the writer's transaction: the router's batch (one INSERT per batch, beside
              the delivery records) and hub events (`hub.publisher.record`)
    window    a tenant's own copies from one sequence on, oldest first
    sweep     delete the copies older than `INBEELD_RETENTION_DAYS` (a router's sweep)

`hub.resync` publishes a tenant's window to its own inbox again, byte for byte.

A copy is the exact body that was published (the envelope with its sequence; sealed `data` is
the JWE the sender made, which the hub never opens) with its message id and type, so the copy
published again is the same message: the connector drops the ones it had already by their id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.store.models import InboxSequence, RetainedCopy, utcnow
from schemas.envelope import CloudEvent
from schemas.errors import Gone
from schemas.events import EVENTS
from schemas.redaction import bsn_in_data

log = structlog.get_logger("inbeeld.retention")

_COPIES = cast(Table, RetainedCopy.__table__)
MAX_PER_RESYNC = 1000  # copies one request republishes; the answer says where to go on


class BeforeRetention(Gone):
    """The copies asked for were delivered longer ago than the hub keeps them."""

    reason = "before_retention"


@dataclass(frozen=True)
class Copy:
    """One copy as published: for `recipient`'s inbox, at `sequence`."""

    recipient: str
    sequence: int
    event_id: str
    event_type: str
    body: bytes
    keepable: bool = True  # False: delivered, not retained (see `may_keep`)


def _insert_ignoring_duplicates(s: AsyncSession) -> Any:
    return pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert


async def keep(s: AsyncSession, copies: Sequence[Copy]) -> None:
    """Retain `copies` in the caller's transaction: one statement (an executemany) whatever
    their number. A copy published again (a redelivered batch) keeps the first one's row."""
    left_out = [c for c in copies if not c.keepable]
    for c in left_out:
        log.warning("retention.not_kept", event_id=c.event_id, recipient=c.recipient, reason="bsn_in_data")
    copies = [c for c in copies if c.keepable]
    if not copies:
        return
    now = utcnow()
    rows = [
        {
            "recipient": c.recipient,
            "sequence": c.sequence,
            "event_id": c.event_id,
            "event_type": c.event_type,
            "body": c.body,
            "created_at": now,
        }
        for c in copies
    ]
    await s.execute(
        _insert_ignoring_duplicates(s)(_COPIES).on_conflict_do_nothing(
            index_elements=["recipient", "sequence"]
        ),
        rows,
    )


def may_keep(event: CloudEvent) -> bool:
    """Whether the hub may keep this event's copies, decided once per event by whoever makes
    them (the router, the hub-event publisher). Sealed data is a JWE the hub never opens; the
    plain data of other events is the sender's own text, which the hub reads in passing but
    must not keep with a BSN in it for the retention period (the envelope rule's safety net,
    `schemas.redaction`, applied to what is kept). Such a copy is delivered, not retained: a
    resync leaves its sequence out, and its recipient counts it as a gap it cannot fill."""
    spec = EVENTS.get(event.type)
    if spec is not None and spec.protection == "sealed":
        return True  # a JWE: nothing readable to look through
    return not bsn_in_data(event.data)


async def sweep(s: AsyncSession, before: datetime) -> int:
    """Delete the copies retained before `before`; returns how many."""
    result = await s.execute(delete(_COPIES).where(_COPIES.c.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def cutoff(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(days=settings.retention_days)


@dataclass(frozen=True)
class Window:
    """What a resync republishes: the copies (oldest first), and where a next request would
    go on (None: nothing more up to the bound asked for, or the inbox's last sequence)."""

    copies: list[Copy]
    next_sequence: int | None
    last_sequence: int  # the inbox's last sequence handed out so far (0: none yet)


async def window(
    s: AsyncSession,
    tenant: str,
    from_sequence: int,
    to_sequence: int | None = None,
    *,
    limit: int = MAX_PER_RESYNC,
) -> Window:
    """`tenant`'s own retained copies with from_sequence <= sequence (<= to_sequence).

    `BeforeRetention` when copies from `from_sequence` on were delivered but are no longer
    kept (swept, or delivered before the hub retained copies): a resync would leave a hole.
    A range that is not delivered yet is simply empty."""
    last = int(
        await s.scalar(select(InboxSequence.last_sequence).where(InboxSequence.tenant_code == tenant)) or 0
    )
    upper = last if to_sequence is None else min(to_sequence, last)
    if from_sequence > upper:
        return Window([], None, last)
    oldest = await s.scalar(select(func.min(_COPIES.c.sequence)).where(_COPIES.c.recipient == tenant))
    if oldest is None or from_sequence < int(oldest):
        kept = "none are kept" if oldest is None else f"the oldest kept is {int(oldest)}"
        raise BeforeRetention(
            f"sequence {from_sequence} is older than the hub keeps copies ({kept}); "
            "what was delivered before cannot be sent again",
            field="from_sequence",
        )
    rows = await s.execute(
        select(_COPIES.c.sequence, _COPIES.c.event_id, _COPIES.c.event_type, _COPIES.c.body)
        .where(
            _COPIES.c.recipient == tenant,
            _COPIES.c.sequence >= from_sequence,
            _COPIES.c.sequence <= upper,
        )
        .order_by(_COPIES.c.sequence)
        .limit(limit + 1)
    )
    copies = [Copy(tenant, int(r.sequence), r.event_id, r.event_type, bytes(r.body)) for r in rows]
    more = copies[limit].sequence if len(copies) > limit else None
    return Window(copies[:limit], more, last)
