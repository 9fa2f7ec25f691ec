"""The node list of an AMQP URL (a RabbitMQ cluster): split, checked, shown without secrets."""

from __future__ import annotations

import re

import pytest

from schemas.amqp_addresses import node_addresses, node_urls, shown_addresses


def test_one_host_is_the_ordinary_url() -> None:
    assert node_urls("amqp://u:p@rmq.example:5672/inbeeld") == ["amqp://u:p@rmq.example:5672/inbeeld"]
    assert node_addresses("amqps://rmq.example/inbeeld") == [("rmq.example", 5671)]


def test_several_hosts_share_credentials_vhost_and_query() -> None:
    url = "amqps://hub:s%40cret@rmq1:5671,rmq2:5700,[::1]/inbeeld?heartbeat=5"
    assert node_urls(url) == [
        "amqps://hub:s%40cret@rmq1:5671/inbeeld?heartbeat=5",
        "amqps://hub:s%40cret@rmq2:5700/inbeeld?heartbeat=5",
        "amqps://hub:s%40cret@[::1]:5671/inbeeld?heartbeat=5",
    ]
    assert shown_addresses(url) == "rmq1:5671,rmq2:5700,[::1]:5671"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://rmq1:5672/", "amqp:// or amqps://"),
        ("amqp://u:p@/v", "must name a host"),
        ("amqp://rmq1:5672,,rmq2:5672/", "address 2 of the node list has no host"),
        ("amqp://rmq1:5672,rmq2:56x2/", "address 2 ('rmq2:56x2') has no valid port"),
        ("amqp://rmq1:5672,rmq2:70000/", "has no valid port"),
        ("amqp://rmq1:5672,RMQ1:5672/", "address 2 ('RMQ1:5672') is listed twice"),
        ("amqp://[::1]x/", "is not [ipv6]:port"),
    ],
)
def test_a_malformed_list_is_named(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        node_urls(url)


def test_the_password_is_never_in_an_error() -> None:
    with pytest.raises(ValueError) as exc:
        node_urls("amqp://hub:topsecret@rmq1:5672,rmq2:bad/")
    assert "topsecret" not in str(exc.value)
    assert "topsecret" not in shown_addresses("amqp://hub:topsecret@rmq1:5672/")
