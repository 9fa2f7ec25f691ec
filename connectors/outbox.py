"""The outbox as an operator sees it: what `inbeeld-connector outbox list|retry|drop` shows
and does. The delivering side is `connectors.sinks.OutboxWorker`.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

The states of an item (`held` is not stored: it follows from the others):

    pending    waiting for its (next) attempt
    held       pending, but an earlier item of its sink and `subject` is parked: it waits,
               so a receiver never sees step 3 of a transfer before step 2
    parked     the receiver refused it `park_after` times with a 4xx other than 408/429
    given_up   not delivered within `retry_days` (stored as `dead`)
    dropped    an operator gave it up (`drop`); its body is erased
    delivered  done; its body is erased

`retry` puts a parked or given-up item back in the queue (refusals counted afresh, its
`retry_days` starting again); `drop` gives it up for good and releases the items it held.
Both are written to the log (`outbox.retried`, `outbox.dropped`: who, what, why; never a
body). A running connector notices either within seconds (`sinks.POLL_SECONDS`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

import structlog
from sqlalchemy import select, update

from connectors.schema import outbox
from connectors.store import DEAD, DELIVERED, DROPPED, PARKED, PENDING, LocalStore, held_behind_parked
from schemas.errors import Conflict, NotFound

__all__ = [
    "LISTED",
    "Listed",
    "OutboxEntry",
    "OutboxItemNotParked",
    "OutboxItemUnknown",
    "State",
    "drop",
    "entries",
    "retry",
    "retry_all",
]

log = structlog.get_logger("inbeeld.connector.outbox")

State = Literal["pending", "held", "parked", "given_up", "dropped", "delivered"]
Listed = Literal["all", "pending", "held", "parked", "given_up", "dropped"]
# What `outbox list --state` accepts; "all" is every item not yet done (pending, held,
# parked, given up).
LISTED: tuple[str, ...] = get_args(Listed)
_STORED: dict[str, State] = {
    PENDING: "pending",
    PARKED: "parked",
    DEAD: "given_up",
    DROPPED: "dropped",
    DELIVERED: "delivered",
}
_OPEN = (PENDING, PARKED, DEAD)  # the stored states of an item not yet done


class OutboxItemUnknown(NotFound):
    """No outbox item has this id."""


class OutboxItemNotParked(Conflict):
    """The item is not parked or given up, so there is nothing to retry or drop."""


@dataclass(frozen=True)
class OutboxEntry:
    """One outbox item's metadata (never its body)."""

    id: int
    sink: str
    state: State
    event_id: str
    event_type: str
    subject: str | None
    attempts: int
    last_status: int | None
    reason: str | None  # parked: the receiver's status and phrase; dropped: the operator's
    created_at: float
    parked_at: float | None
    held_by: int | None = None  # held: the parked item it waits for
    holds: int = 0  # parked: how many items wait behind it


async def entries(store: LocalStore, state: Listed = "all", sink: str | None = None) -> list[OutboxEntry]:
    """The items in `state`, oldest first ("all": every item not yet delivered or dropped)."""
    if state not in LISTED:
        raise ValueError(f"state must be one of {', '.join(LISTED)}")
    stored = (DROPPED,) if state == "dropped" else _OPEN
    query = select(outbox).where(outbox.c.status.in_(stored)).order_by(outbox.c.id)
    if sink is not None:
        query = query.where(outbox.c.sink == sink)
    async with store.engine.connect() as conn:
        rows = [dict(r) for r in (await conn.execute(query)).mappings()]
    found = _with_holds(rows)
    return found if state in ("all", "dropped") else [e for e in found if e.state == state]


def _with_holds(rows: Sequence[dict[str, Any]]) -> list[OutboxEntry]:
    first_parked: dict[tuple[str, str], int] = {}  # (sink, subject) -> its earliest parked item
    holds: dict[int, int] = {}
    held_by: dict[int, int] = {}
    for r in rows:  # in id order
        key, item_id = (r["sink"], r["subject"]), int(r["id"])
        if r["subject"] is None:
            continue
        if r["status"] == PARKED and key not in first_parked:
            first_parked[key] = item_id
        elif r["status"] == PENDING and key in first_parked:
            held_by[item_id] = first_parked[key]
            holds[first_parked[key]] = holds.get(first_parked[key], 0) + 1
    return [_entry(r, held_by.get(int(r["id"])), holds.get(int(r["id"]), 0)) for r in rows]


def _entry(r: dict[str, Any], held_by: int | None, holds: int) -> OutboxEntry:
    stored = str(r["status"])
    return OutboxEntry(
        id=int(r["id"]),
        sink=str(r["sink"]),
        state="held" if held_by is not None else _STORED.get(stored, "pending"),
        event_id=str(r["event_id"]),
        event_type=str(r["event_type"]),
        subject=None if r["subject"] is None else str(r["subject"]),
        attempts=int(r["attempts"]),
        last_status=None if r["last_status"] is None else int(r["last_status"]),
        reason=None if r["reason"] is None else str(r["reason"]),
        created_at=float(r["created_at"]),
        parked_at=None if r["parked_at"] is None else float(r["parked_at"]),
        held_by=held_by,
        holds=holds,
    )


async def _one(store: LocalStore, item_id: int) -> OutboxEntry:
    async with store.engine.connect() as conn:
        row = (await conn.execute(select(outbox).where(outbox.c.id == item_id))).mappings().first()
        if row is None:
            raise OutboxItemUnknown(f"no outbox item {item_id} (see: inbeeld-connector outbox list)")
        r = dict(row)
        held_by = None
        if r["status"] == PENDING and r["subject"] is not None:
            parked = outbox.alias("parked")
            held_by = await conn.scalar(
                select(parked.c.id)
                .where(
                    parked.c.sink == r["sink"],
                    parked.c.subject == r["subject"],
                    parked.c.status == PARKED,
                    parked.c.id < item_id,
                )
                .order_by(parked.c.id)
                .limit(1)
            )
    return _entry(r, held_by, 0)


def _not_parked(entry: OutboxEntry) -> OutboxItemNotParked:
    return OutboxItemNotParked(
        f"outbox item {entry.id} is {entry.state.replace('_', ' ')}: only a parked or given-up item "
        "can be retried or dropped"
    )


async def retry(store: LocalStore, item_id: int, *, tenant: str | None = None) -> OutboxEntry:
    """Queue a parked or given-up item again, now; returns it as it was before."""
    entry = await _one(store, item_id)
    if entry.state not in ("parked", "given_up"):
        raise _not_parked(entry)
    now = time.time()
    async with store.engine.begin() as conn:
        done = await conn.execute(
            update(outbox)
            .where(outbox.c.id == item_id, outbox.c.status.in_((PARKED, DEAD)))
            .values(status=PENDING, refusals=0, next_attempt_at=now, retried_at=now, stuck_reported=0)
        )
    if done.rowcount != 1:  # changed by someone else meanwhile
        raise _not_parked(await _one(store, item_id))
    log.info(
        "outbox.retried",
        tenant=tenant,
        sink=entry.sink,
        item=entry.id,
        event_id=entry.event_id,
        type=entry.event_type,
        subject=entry.subject,
        was=entry.state,
    )
    return entry


async def retry_all(
    store: LocalStore, sink: str | None = None, *, tenant: str | None = None
) -> list[OutboxEntry]:
    """Queue every parked and given-up item (of `sink`) again; returns them."""
    retried = []
    for entry in await entries(store, "all", sink):
        if entry.state in ("parked", "given_up"):
            retried.append(await retry(store, entry.id, tenant=tenant))
    return retried


async def drop(
    store: LocalStore, item_id: int, reason: str, *, tenant: str | None = None
) -> tuple[OutboxEntry, int]:
    """Give up a parked or given-up item for good (its body erased); returns it as it was and
    how many held items it released."""
    reason = " ".join(reason.split())
    if not reason:
        raise ValueError("give a reason: it is kept with the item and written to the log")
    entry = await _one(store, item_id)
    if entry.state not in ("parked", "given_up"):
        raise _not_parked(entry)
    async with store.engine.begin() as conn:
        done = await conn.execute(
            update(outbox)
            .where(outbox.c.id == item_id, outbox.c.status.in_((PARKED, DEAD)))
            .values(status=DROPPED, body=b"", wrapped_key=None, reason=reason[:200], dropped_at=time.time())
        )
        released = 0
        if done.rowcount == 1 and entry.subject is not None and entry.state == "parked":
            released = len(
                (
                    await conn.execute(
                        select(outbox.c.id).where(
                            outbox.c.sink == entry.sink,
                            outbox.c.subject == entry.subject,
                            outbox.c.status == PENDING,
                            outbox.c.id > item_id,
                            ~held_behind_parked(),
                        )
                    )
                ).all()
            )
    if done.rowcount != 1:
        raise _not_parked(await _one(store, item_id))
    log.warning(
        "outbox.dropped",
        tenant=tenant,
        sink=entry.sink,
        item=entry.id,
        event_id=entry.event_id,
        type=entry.event_type,
        subject=entry.subject,
        was=entry.state,
        reason=reason[:200],
        released=released,
    )
    return entry, released
