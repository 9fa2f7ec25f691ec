"""The broker's file-descriptor room for tenant inboxes (hub.broker.capacity).

The figures are the ones that made the 400-tenant benchmark hang: with Debian's default soft
limit RabbitMQ reports 927 usable descriptors, and 401 quorum inboxes held 1,217."""

from __future__ import annotations

import uuid

from hub.broker import capacity
from hub.broker.capacity import Room
from hub.broker.topology import declare_inbox, new_inbox_name
from hub.services import amqp_channel, management
from tests.utils.hubs import RunningHub


def test_default_limit_holds_about_three_hundred_inboxes() -> None:
    empty = Room(fd_total=927, fd_used=40, queues=0)
    assert 230 <= empty.more_queues <= 310
    assert empty.fits(200) and not empty.fits(401)


def test_four_hundred_inboxes_exhaust_the_default_limit() -> None:
    assert Room(fd_total=927, fd_used=927, queues=401).exhausted
    assert Room(fd_total=927, fd_used=500, queues=401).more_queues == 0


def test_a_raised_limit_leaves_room_for_a_national_deployment() -> None:
    room = Room(fd_total=19_903, fd_used=1_217, queues=401)
    assert not room.exhausted and room.fits(342 + 100)
    assert "room for about" in room.describe() and "1217 of 19903" in room.describe()


async def test_broker_room_counts_the_queues_a_vhost_adds(hub: RunningHub) -> None:
    async with management(hub.settings) as mgmt:
        before = await capacity.broker_room(mgmt)
        codes = [f"CAP{uuid.uuid4().hex[:6].upper()}" for _ in range(3)]
        names = {code: new_inbox_name(code) for code in codes}
        async with amqp_channel(hub.settings) as channel:
            for code in codes:
                await declare_inbox(channel, names[code], code, hub.settings.delivery_limit, 1000)
        try:
            after = await capacity.broker_room(mgmt)
        finally:
            for code in codes:
                await mgmt.delete_queue(hub.settings.vhost, names[code])
    assert before and len(before) == len(after)
    (_, room_before), (_, room_after) = before[0], after[0]
    assert room_before.fd_total > 0
    assert room_after.queues >= room_before.queues + 3
    assert room_after.more_queues <= room_before.more_queues - 3
