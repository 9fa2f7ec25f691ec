"""Replaying a dead letter once its cause is fixed: the operator sends it back to the router.

The copy goes straight to the router queue with `user_id` = the hub's own broker user (only
the hub can set that) and a header naming the dead letter; the router then routes it as the
tenant the dead letter is filed under - which is only ever the broker-validated sender - and
checks it exactly as a fresh event (the body's `source` must belong to that tenant)."""

from __future__ import annotations

import aio_pika
from sqlalchemy.ext.asyncio import AsyncSession

from hub.broker.topology import ROUTER_QUEUE
from hub.config import Settings
from hub.services import amqp_channel
from hub.store.db import Database
from hub.store.models import DeadLetter, utcnow
from schemas.errors import Conflict, InbeeldError, NotFound, PersonalDataInEnvelope
from schemas.redaction import bsn_in_attributes

HEADER_REPLAY = "x-inbeeld-replay"


class ReplayRefused(InbeeldError):
    reason = "replay_refused"


async def replay_dead_letter(settings: Settings, db: Database, dl_id: int) -> None:
    async with db.session() as s:
        dl = await s.get(DeadLetter, dl_id)
        if dl is None:
            raise NotFound(f"no dead letter {dl_id}")
        if dl.discarded_at is not None:
            raise ReplayRefused("this dead letter was discarded, so it cannot be replayed")
        if dl.sender is None:
            raise ReplayRefused("this dead letter has no known sender, so it cannot be replayed")
        if not dl.body:
            raise ReplayRefused("the body of this dead letter was not kept, so it cannot be replayed")
        body = dl.body
    async with amqp_channel(settings) as channel:
        await channel.default_exchange.publish(
            aio_pika.Message(
                body,
                user_id=settings.amqp_user,
                headers={HEADER_REPLAY: str(dl_id)},
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=ROUTER_QUEUE,
            timeout=settings.publish_timeout,
        )
    async with db.session() as s, s.begin():
        row = await s.get(DeadLetter, dl_id)
        assert row is not None
        row.replayed_at = utcnow()


class DiscardRefused(Conflict):
    reason = "discard_refused"


async def discard_dead_letter(s: AsyncSession, dl_id: int, reason: str) -> DeadLetter:
    """Mark dead letter `dl_id` discarded with `reason` and drop its kept body (its size and
    SHA-256 stay). A replayed or already discarded one is refused (409)."""
    if bsn_in_attributes({"reason": reason}) is not None:
        raise PersonalDataInEnvelope(
            "the reason holds what looks like a BSN; keep personal data out of the hub", field="reason"
        )
    dl = await s.get(DeadLetter, dl_id)
    if dl is None:
        raise NotFound(f"no dead letter {dl_id}")
    if dl.discarded_at is not None:
        raise DiscardRefused(f"dead letter {dl_id} was discarded already")
    if dl.replayed_at is not None:
        raise DiscardRefused(f"dead letter {dl_id} was replayed; there is nothing to discard")
    dl.discarded_at = utcnow()
    dl.discard_reason = reason
    dl.body = b""
    return dl
