"""Resync after an outage: a tenant's retained copies (`hub.retention`) published to its own
inbox again, unchanged - the same body, message id and sequence - so its connector fills the
hole in its sequence and drops, by their ids, the copies it had already."""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from hub import retention
from hub.config import Settings
from hub.publisher import HubPublisher
from hub.store.db import Database

log = structlog.get_logger("inbeeld.resync")


@dataclass(frozen=True)
class Resynced:
    republished: int
    first_sequence: int | None
    last_sequence: int | None
    next_sequence: int | None  # ask again from here (more than one request holds, or a full inbox)
    refused: bool  # the inbox was full: it refused a copy, the rest was not sent


async def resync(
    settings: Settings, db: Database, tenant: str, from_sequence: int, to_sequence: int | None = None
) -> Resynced:
    """Publish `tenant`'s retained copies from `from_sequence` on to its own inbox again,
    unchanged (same body, id and sequence), oldest first. Only ever the caller's own inbox:
    `tenant` comes from its token."""
    async with db.session() as s:
        found = await retention.window(s, tenant, from_sequence, to_sequence)
    if not found.copies:
        return Resynced(0, None, None, found.next_sequence, False)
    sent: list[retention.Copy] = []
    refused = False
    async with HubPublisher.open(settings) as publisher:
        for c in found.copies:
            if not await publisher.republish(c.body, c.event_id, c.event_type, tenant):
                refused = True
                break
            sent.append(c)
    next_sequence = found.copies[len(sent)].sequence if refused else found.next_sequence
    log.info(
        "resync.done",
        tenant=tenant,
        from_sequence=from_sequence,
        republished=len(sent),
        refused=refused,
    )
    return Resynced(
        len(sent),
        sent[0].sequence if sent else None,
        sent[-1].sequence if sent else None,
        next_sequence,
        refused,
    )
