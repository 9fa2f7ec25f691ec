"""Issue 23: the connector over a cluster's node list (`[broker] url` with several
addresses). Two TCP proxies in front of the real RabbitMQ stand for two nodes and a port where
nothing listens for a node that is down: the connector opens on the first node that answers,
and when that node goes away it publishes and consumes through another, losing nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from connectors.client import Connector, ConnectorError
from connectors.config import BrokerConfig
from tests.utils.hubs import RunningHub
from tests.utils.proxy import TcpProxy
from tests.utils.rabbit_node import free_port

pytestmark = pytest.mark.broker
PING = "nl.leerplicht.ping"


@pytest.fixture
async def proxies() -> AsyncIterator[tuple[TcpProxy, TcpProxy]]:
    a, b = TcpProxy("127.0.0.1", 5672), TcpProxy("127.0.0.1", 5672)
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


def over(url: str, ports: list[int]) -> str:
    """`url` with its one host replaced by the node list `ports`."""
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    return url.replace(urlsplit(url).netloc.rsplit("@", 1)[1], hosts)


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
async def test_publish_and_consume_move_to_another_node(
    hub: RunningHub, proxies: tuple[TcpProxy, TcpProxy]
) -> None:
    a, b = proxies
    nodes = [free_port(), a.port, b.port]  # the first is down
    marker = f"failover-{uuid.uuid4().hex[:8]}"
    sender = Connector("GM0307", over(hub.tenant_url("GM0307"), nodes), system="test-sdk", reconnect_max=0.5)
    receiver = Connector(
        "GM0957",
        over(hub.tenant_url("GM0957"), nodes),
        inbox_name=hub.inbox("GM0957"),
        system="test-sdk",
        reconnect_max=0.5,
    )
    await sender.connect()
    await receiver.connect()
    assert a.connections == 2 and b.connections == 0  # both on the first node that answers
    got: list[str] = []

    async def consume() -> None:
        async for message in receiver.inbox():
            await message.ack()
            if message.event.type == PING and str(message.event.data["text"]).startswith(marker):
                got.append(message.event.data["text"])

    async def until(n: int) -> None:
        for _ in range(400):
            if len(got) >= n:
                return
            await asyncio.sleep(0.05)

    consuming = asyncio.create_task(consume())
    try:
        await sender.send(PING, {"text": f"{marker}-a"}, ["GM0957"])
        await until(1)
        a.refuse = True  # node A goes away for good
        await a.disconnect_all()
        await asyncio.wait_for(sender.send(PING, {"text": f"{marker}-b"}, ["GM0957"]), 30)
        await until(2)
        assert got == [f"{marker}-a", f"{marker}-b"]
        assert b.connections >= 2  # sender and receiver moved on
        assert sender.stats.reconnects >= 1 and receiver.stats.reconnects >= 1
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
        await sender.close()
        await receiver.close()


@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
async def test_no_node_answers_names_every_address(hub: RunningHub) -> None:
    dead = [free_port(), free_port()]
    c = Connector("GM0307", over(hub.tenant_url("GM0307"), dead), system="test-sdk", connect_timeout=2)
    with pytest.raises(ConnectorError) as exc:
        await c.connect()
    assert f"127.0.0.1:{dead[0]},127.0.0.1:{dead[1]}" in exc.value.message


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("amqp://rmq1:5672,rmq2:x/inbeeld", "address 2 ('rmq2:x') has no valid port"),
        ("amqp://rmq1:5672,,rmq2/inbeeld", "address 2 of the node list has no host"),
    ],
)
def test_the_config_names_a_malformed_node_list(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(").replace(")", r"\)")):
        BrokerConfig(url=url, username="u", password="p")


def test_the_config_accepts_a_node_list() -> None:
    cfg = BrokerConfig(url="amqps://rmq1:5671,rmq2:5671/inbeeld", username="inbeeld.GM0307", password="p")
    assert cfg.amqp_url() == "amqps://inbeeld.GM0307:p@rmq1:5671,rmq2:5671/inbeeld"
