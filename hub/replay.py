"""Replaying a dead letter once its cause is fixed: the operator sends it back to the router.

The copy goes straight to the router queue with `user_id` = the hub's own broker user (only
the hub can set that) and a header naming the dead letter; the router then routes it as the
tenant the dead letter is filed under - which is only ever the broker-validated sender - and
checks it exactly as a fresh event (the body's `source` must belong to that tenant)."""

from __future__ import annotations

import aio_pika

from hub.broker.topology import ROUTER_QUEUE
from hub.config import Settings
from hub.services import amqp_channel
from hub.store.db import Database
from hub.store.models import DeadLetter, utcnow
from schemas.errors import InbeeldError, NotFound

HEADER_REPLAY = "x-inbeeld-replay"


class ReplayRefused(InbeeldError):
    reason = "replay_refused"


async def replay_dead_letter(settings: Settings, db: Database, dl_id: int) -> None:
    async with db.session() as s:
        dl = await s.get(DeadLetter, dl_id)
        if dl is None:
            raise NotFound(f"no dead letter {dl_id}")
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
