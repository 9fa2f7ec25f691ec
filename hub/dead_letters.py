"""The dead-letter archive: what reached `inbeeld.dead` is filed in the store, where the
operator lists and replays it. What to file, under whom, and whether the body is kept.

Anything a tenant published can end up there (the broker dead-letters it when it expires or
passes the delivery limit), with whatever headers the tenant gave it. So:

- the `x-inbeeld-*` headers are believed only on what the hub itself dead-lettered (its own
  broker user as `user_id`, which no tenant can set);
- otherwise the sender is the tenant behind the broker-validated `user_id`; with no such
  tenant the message is counted (hub.metrics) and dropped, not kept;
- the body is kept only for an event whose `data` is a JOSE object and whose envelope holds
  no BSN.
"""

from __future__ import annotations

import asyncio

import structlog
from aio_pika.abc import AbstractIncomingMessage

from hub import ledger, metrics, registry
from hub.errors import Transient
from hub.replay import HEADER_REPLAY
from hub.store.db import Database
from hub.store.models import DeadLetter
from schemas.envelope import CloudEvent, parse_event
from schemas.errors import InbeeldError
from schemas.redaction import bsn_in_attributes
from schemas.sealed import looks_like_jose

log = structlog.get_logger("inbeeld.router")

HEADER_REASON = "x-inbeeld-reason"
HEADER_DETAIL = "x-inbeeld-detail"
HEADER_SENDER = "x-inbeeld-sender"
# Why the broker dead-lettered a message (x-first-death-reason); anything else a publisher
# may have put in that header is not believed.
BROKER_DEATH_REASONS = frozenset({"expired", "rejected", "maxlen", "delivery_limit"})


def envelope_attributes(event: CloudEvent) -> dict[str, str | list[str] | None]:
    """The envelope attributes the hub stores or logs in the clear."""
    return {
        "id": event.id,
        "source": event.source,
        "subject": event.subject,
        "correlationid": event.correlationid,
        "recipients": list(event.recipients),
        "dataschema": event.dataschema,
    }


def is_jose_event(body: bytes) -> bool:
    """Whether `body` is an event whose `data` is a JOSE object (signed or sealed) and whose
    envelope holds no BSN: the only dead-letter bodies the hub keeps."""
    try:
        event = parse_event(body)
    except InbeeldError:
        return False
    return looks_like_jose(event.data) and bsn_in_attributes(envelope_attributes(event)) is None


async def archive(message: AbstractIncomingMessage, db: Database, hub_user: str) -> None:
    """File one message from `inbeeld.dead` (see the module docstring for whom it is believed)
    and ack it; with the store away, nack it for redelivery and pause. `hub_user` is the hub's
    own broker user."""
    raw = message.headers or {}
    from_hub = message.user_id == hub_user
    headers: dict[str, str] = {}
    death = str(raw.get("x-first-death-reason", ""))
    if death in BROKER_DEATH_REASONS:
        headers["x-first-death-reason"] = death
    if from_hub:
        headers.update({k: str(v)[:500] for k, v in raw.items() if k.startswith("x-inbeeld-")})
    reason = headers.get(HEADER_REASON) or headers.get("x-first-death-reason", "dead")
    sender = headers.get(HEADER_SENDER) or None
    try:
        async with db.session() as s, s.begin():
            replay_of = headers.get(HEADER_REPLAY, "")
            if from_hub and replay_of.isdigit():  # a replay that died again: same sender
                earlier = await s.get(DeadLetter, int(replay_of))
                sender = earlier.sender if earlier is not None else None
            elif not from_hub:
                tenant = None
                if message.user_id:
                    tenant = await registry.tenant_by_broker_user(s, message.user_id)
                if tenant is None:  # nobody to file it under: counted, not kept
                    metrics.count_unknown_sender(message.user_id)
                    log.warning("router.unknown_sender", user_id=message.user_id, dead=True)
                    await message.ack()
                    return
                sender = tenant.code
            await ledger.add_dead_letter(
                s,
                reason=reason[:32],
                detail=headers.get(HEADER_DETAIL, ""),
                sender=sender,
                body=message.body,
                headers=headers,
                keep_body=is_jose_event(message.body),
            )
    except Transient:
        await message.nack(requeue=True)
        await asyncio.sleep(1)
        return
    await message.ack()
