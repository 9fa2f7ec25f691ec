"""The management API client over a cluster's list of node addresses
(`INBEELD_RABBITMQ_API_URL` with several, comma-separated): a call goes to the node that
answered last and moves on when that one cannot be reached; the real API answers behind a
port where nothing listens (a node that is down). The three-node cluster test does the same
through `inbeeld doctor` with a node really stopped."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.broker.management import Management
from hub.errors import ManagementUnavailable
from tests.conftest import base_settings
from tests.utils.rabbit_node import free_port

pytestmark = [pytest.mark.broker]


def api_url() -> str:
    return base_settings().rabbitmq_api_url.split(",")[0]


def credentials() -> tuple[str, str]:
    return base_settings().api_credentials


async def test_a_call_moves_on_to_the_node_that_answers_and_stays_there() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    async with Management(f"{down}, {api_url()}/", *credentials()) as mgmt:
        assert mgmt.base_url == down  # the first address until a call moved on
        overview = await mgmt.overview()
        assert overview["rabbitmq_version"]
        assert mgmt.base_url == api_url()
        assert [n["name"] for n in await mgmt.nodes()]  # the next call goes straight there
        assert mgmt.base_url == api_url()


async def test_no_node_answering_names_every_address() -> None:
    a, b = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    async with Management(f"{a},{b}", *credentials()) as mgmt:
        with pytest.raises(ManagementUnavailable) as caught:
            await mgmt.overview()
    message = str(caught.value)
    assert f"{a}: ConnectError" in message and f"{b}: ConnectError" in message
    assert "INBEELD_RABBITMQ_API_URL" in message


async def test_one_address_down_reads_as_before() -> None:
    down = f"http://127.0.0.1:{free_port()}"
    async with Management(down, *credentials()) as mgmt:
        with pytest.raises(ManagementUnavailable) as caught:
            await mgmt.vhost_exists("/")
    assert str(caught.value).startswith(
        f"The RabbitMQ management API is not reachable at {down} (ConnectError)"
    )


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("127.0.0.1:15672", "'127.0.0.1:15672'"),
        ("http://a:15672,,http://b:15672", "address 2 ('')"),
        ("http://a:15672,amqp://b:5672", "address 2 ('amqp://b:5672')"),
        ("http://admin:s3cret@a:15672,ftp://b", "address 2 ('ftp://b')"),
    ],
)
def test_a_malformed_address_list_is_refused_naming_the_entry(value: str, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        base_settings(rabbitmq_api_url=value)
    text = str(caught.value)
    assert f"{named} is not an http(s)://HOST:PORT address of a management API" in text
    assert "s3cret" not in text


def test_a_password_in_a_bad_address_is_not_shown() -> None:
    with pytest.raises(ValidationError) as caught:
        base_settings(rabbitmq_api_url="htp://admin:s3cret@a:15672")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
