"""Issue 23: the hub's connections over a cluster's node list (`INBEELD_AMQP_URL` with
several addresses). Two TCP proxies in front of the real RabbitMQ stand for two nodes, and a
port where nothing listens for a third that is down: the connection opens on the first that
answers, and when its node goes away the robust connection moves on to the next address,
round robin, with its consumer restored."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from aiormq.exceptions import ProbableAuthenticationError

from hub.broker.connection import BROKER_AWAY, open_connection
from hub.broker.failover_connection import FailoverConnection
from tests.utils.hubs import RunningHub
from tests.utils.proxy import TcpProxy
from tests.utils.rabbit_node import free_port

pytestmark = [pytest.mark.broker, pytest.mark.parametrize("hub", ["sqlite"], indirect=True)]


@pytest.fixture
async def proxies() -> AsyncIterator[tuple[TcpProxy, TcpProxy]]:
    a, b = TcpProxy("127.0.0.1", 5672), TcpProxy("127.0.0.1", 5672)
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


def cluster_url(hub: RunningHub, ports: list[int], password: str = "guest") -> str:
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    return f"amqp://guest:{password}@{hosts}/{quote(hub.settings.vhost, safe='')}"


async def until(cond, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError


async def test_the_robust_connection_rotates_through_the_nodes(
    hub: RunningHub, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    a, b = proxies
    down = free_port()  # a node that is down: nothing listens there
    conn = await open_connection(
        cluster_url(hub, [down, a.port, b.port]), robust=True, reconnect_interval=0.1
    )
    try:
        assert isinstance(conn, FailoverConnection)
        assert conn.url.port == a.port and a.connections == 1  # the first that answers
        channel = await conn.channel()
        queue = await channel.declare_queue(f"failover-{uuid.uuid4().hex[:8]}", auto_delete=True)
        got: list[bytes] = []

        async def on_message(message: AbstractIncomingMessage) -> None:
            got.append(message.body)
            await message.ack()

        await queue.consume(on_message)

        async def roundtrip(body: bytes) -> None:
            for _ in range(100):  # the channel is restored just after the connection reopens
                try:
                    await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue.name)
                    break
                except BROKER_AWAY:
                    await asyncio.sleep(0.1)
            await until(lambda: body in got)

        await roundtrip(b"1")
        # Node A goes away: the next attempt is B, where the queue and consumer are restored.
        a.refuse = True
        await a.disconnect_all()
        await until(lambda: b.connections == 1 and conn.connected.is_set())
        await roundtrip(b"2")
        # Node B goes away, A is back: the node that is down is tried, then A.
        a.refuse = False
        b.refuse = True
        await b.disconnect_all()
        await until(lambda: a.connections == 2 and conn.connected.is_set())
        await roundtrip(b"3")
        assert [u.port for u in conn.attempted] == [a.port, b.port, down, a.port]
        assert got == [b"1", b"2", b"3"]
    finally:
        await conn.close()


async def test_a_plain_connection_opens_on_the_first_node_that_answers(
    hub: RunningHub, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    a, b = proxies
    conn = await open_connection(cluster_url(hub, [free_port(), b.port, a.port]))
    try:
        assert not isinstance(conn, FailoverConnection)
        assert (b.connections, a.connections) == (1, 0)
    finally:
        await conn.close()


async def test_a_refusal_is_the_clusters_answer_not_tried_on_the_next_node(
    hub: RunningHub, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    a, b = proxies
    with pytest.raises(ProbableAuthenticationError):
        await open_connection(cluster_url(hub, [a.port, b.port], password="wrong"), robust=True)
    assert (a.connections, b.connections) == (1, 0)


async def test_a_single_address_keeps_the_library_connection(hub: RunningHub) -> None:
    conn = await open_connection(hub.settings.amqp_url_for(), robust=True)
    try:
        assert type(conn) is aio_pika.RobustConnection
    finally:
        await conn.close()
