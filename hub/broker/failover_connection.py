"""A robust AMQP connection that fails over between the nodes of a RabbitMQ cluster.

aio-pika's `RobustConnection` reconnects only to the one URL it was made with: when that node
goes away for good, the hub would wait for it instead of using the cluster's other nodes.
`FailoverConnection` is that same connection (channels re-opened, their queues, exchanges and
consumers restored by aio-pika, our `reopen_callbacks` called) with one change: each connection
attempt - the first and every reconnect - goes to the next address of its list, round robin.

How: `RobustConnection` opens every attempt through `Connection.connect(self)`, which dials
`self.url`, and starts every attempt by setting `self.transport = None`. That assignment is
the hook: `transport` is a property here whose setter picks the next address when it is
cleared for an attempt (not when the connection is being closed for good). No private method
of aio-pika is copied or called. `tests/hub/broker/test_failover_connection.py` proves the
rotation against the library in use, so a change of aio-pika that moves the hook fails there.

Publishes in flight when the node goes away get no confirm: their futures fail with the
connection error, and the caller (router, publisher) retries them - on the next node - with
the same message id, which the router's ledger keeps single.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.abc import UnderlayConnection
from aio_pika.connection import make_url
from yarl import URL

__all__ = ["FailoverConnection"]


class FailoverConnection(aio_pika.RobustConnection):
    """`RobustConnection` over `urls` (one per node, `schemas.amqp_addresses.node_urls`),
    trying `urls[start]` first and then each next one, round robin, per attempt."""

    def __init__(self, urls: Sequence[str], *, start: int = 0, **kwargs: Any) -> None:
        if not urls:
            raise ValueError("FailoverConnection needs at least one URL")
        self._addresses: tuple[URL, ...] = ()  # empty while the base class initialises
        self._next = start % len(urls)
        self._transport: UnderlayConnection | None = None
        super().__init__(make_url(urls[self._next]), **kwargs)
        self._addresses = tuple(make_url(u) for u in urls)
        self.attempted: list[URL] = []  # the address of each attempt, oldest first (bounded)

    @property
    def transport(self) -> UnderlayConnection | None:
        return self._transport

    @transport.setter
    def transport(self, value: UnderlayConnection | None) -> None:
        self._transport = value
        if value is None and self._addresses and not self._close_called:
            self.url = self._addresses[self._next]
            self._next = (self._next + 1) % len(self._addresses)
            self.attempted = [*self.attempted[-99:], self.url]

    @property
    def addresses(self) -> tuple[URL, ...]:
        return self._addresses
