"""How many tenants the broker can hold: each tenant's inbox is a quorum queue, and on a
single RabbitMQ 3.10 node every quorum queue keeps about three files open (its segment, its
snapshot and its share of the write-ahead log; measured 1,217 descriptors for 401 inboxes).

When the node's file-descriptor limit is used up, RabbitMQ stops accepting AMQP connections:
the TCP handshake completes but `Connection.Open` is never answered, for every user and every
vhost. With a distribution's default soft limit of 1,024 that happens at about 300 tenants, so
the limit has to be raised (`ulimit -n 65536` in RabbitMQ's environment, `LimitNOFILE` in its
systemd unit, `ulimits.nofile` in compose) before a national deployment. `inbeeld doctor` and
the benchmarks check it with `room`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub.broker.management import Management

FDS_PER_QUORUM_QUEUE = 3
# What the node needs besides queues: its own files, the management plugin, and the sockets of
# the routers, API workers and tenants' connectors (RabbitMQ reserves about a tenth for them).
RESERVE = 200


@dataclass(frozen=True)
class Room:
    fd_total: int
    fd_used: int
    queues: int

    @property
    def more_queues(self) -> int:
        """Quorum queues (tenants) that can still be added before connections are refused."""
        spare = self.fd_total - RESERVE - self.queues * FDS_PER_QUORUM_QUEUE
        return max(0, spare // FDS_PER_QUORUM_QUEUE)

    def fits(self, extra_queues: int) -> bool:
        return extra_queues <= self.more_queues

    @property
    def exhausted(self) -> bool:
        return self.fd_used >= 0.9 * self.fd_total or self.more_queues == 0

    def describe(self) -> str:
        return (
            f"{self.fd_used} of {self.fd_total} file descriptors in use, {self.queues} queues; "
            f"room for about {self.more_queues} more tenant inboxes"
        )


def room(node: Mapping[str, Any], queues: int) -> Room:
    """From one entry of the management API's `/api/nodes` and the broker's queue count."""
    return Room(int(node.get("fd_total") or 0), int(node.get("fd_used") or 0), queues)


async def broker_room(mgmt: Management) -> list[tuple[str, Room]]:
    """Each running node's room; on a cluster every node is counted as if it held every
    queue. A node of the cluster that is not running reports no figures (0 of 0): left out."""
    overview = await mgmt.overview()
    queues = int((overview.get("object_totals") or {}).get("queues") or 0)
    return [(str(n.get("name")), room(n, queues)) for n in await mgmt.nodes() if n.get("running", True)]
