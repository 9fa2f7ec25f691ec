"""`bench.inboxes` against the real broker: it declares the hub's inboxes in a vhost of its
own, reads the node's figures around each step, and removes the vhost again."""

from __future__ import annotations

import pytest

from bench import inboxes
from bench.deployment import BrokerTooSmall
from hub.broker.topology import inbox_args
from hub.services import management
from tests.conftest import base_settings

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_per_inbox_divides_the_difference_of_two_readings() -> None:
    before = inboxes.Reading(mem_used=100 * 1024 * 1024, fd_used=60)
    after = inboxes.Reading(mem_used=100 * 1024 * 1024 + 10 * 200 * 1024, fd_used=70)
    assert inboxes.per_inbox(before, after, 10) == {"mem_kib": 200.0, "fds": 1.0}
    readings = [inboxes.Reading(5, 9), inboxes.Reading(1, 7), inboxes.Reading(3, 8)]
    assert inboxes.median_reading(readings) == inboxes.Reading(3, 8)


async def test_measures_the_hubs_inboxes_and_removes_its_vhost() -> None:
    settings = base_settings()
    roll = inboxes.rabbitmqctl() is not None  # the node is local and its CLI works here
    result = await inboxes.measure(settings, 6, samples=1, settle_s=0.5, roll_wal=roll)

    assert result["inboxes"] == result["inboxes_found"] == 6
    assert result["inbox_arguments"] == inbox_args(settings.delivery_limit, settings.inbox_max_length)
    assert result["messages_consumed"] == 6
    # Each inbox's own process reports its memory (not disturbed by other work on the node).
    assert result["queue_process_kib_per_inbox"]["empty"] > 0
    assert result["fd_total"] > 0 and result["node_before"]["fd_used"] > 0
    steps = ["empty", "one_message", "with_a_consuming_connection"]
    steps += ["after_wal_roll_over"] if roll else []
    for step in steps:
        assert set(result[f"per_inbox_{step}"]) == {"mem_kib", "fds"}
    if not roll:
        assert result["per_inbox_after_wal_roll_over"] is None  # only when asked for
    async with management(settings) as mgmt:
        assert not await mgmt.vhost_exists(result["vhost"])


async def test_refuses_more_inboxes_than_the_node_has_descriptors_for() -> None:
    settings = base_settings()
    async with management(settings) as mgmt:
        nodes = await mgmt.nodes()
    if len(nodes) != 1:
        pytest.skip("a single node expected")
    too_many = int(nodes[0]["fd_total"])  # at least three descriptors each would be needed
    with pytest.raises(BrokerTooSmall, match="not enough"):
        await inboxes.measure(settings, too_many, samples=1, settle_s=0)
