"""Asking the hub to fill a gap in our inbox: `POST /inbox/resync` (hub.resync).

The hub keeps every copy it delivered for `INBEELD_RETENTION_DAYS` and publishes the ones
asked for to our own inbox again, unchanged (same id, sequence and ciphertext): the connector's
de-duplication drops those it had already. `Connector(resync=...)` calls this by itself when
a gap stays open past its `gap_grace`.
"""

from __future__ import annotations

import asyncio

import structlog

from connectors.hub_api import HubApi, HubApiError

log = structlog.get_logger("inbeeld.connector")

FULL_INBOX_WAIT = 1.0  # seconds between asks while our own inbox is too full to take copies
FULL_INBOX_TRIES = 60


async def ask_resync(api: HubApi, first: int, last: int) -> int:
    """Have the hub publish inbox sequence numbers `first`..`last` again; returns how many it
    published. Follows the hub's `next_sequence` (a large range takes several requests) and
    waits while our inbox is full. A range the hub no longer keeps raises `Gone` (410), a hub
    that cannot be reached `HubApiError`."""
    sent = 0
    start: int | None = first
    full = 0
    while start is not None:
        answer = await api.request(
            "POST", "/inbox/resync", json={"from_sequence": start, "to_sequence": last}
        )
        sent += int(answer["republished"])
        start = answer["next_sequence"]
        if answer["inbox_full"]:
            full += 1
            if full >= FULL_INBOX_TRIES:
                raise HubApiError(f"our inbox stayed full; copies from {start} on are still to come")
            await asyncio.sleep(FULL_INBOX_WAIT)
        else:
            full = 0
    log.info("connector.resynced", first=first, last=last, republished=sent)
    return sent
