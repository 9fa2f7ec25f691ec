"""Where the connector learns its inbox name: `[broker] inbox`, else the hub's
`GET /tenants/me`; every way that can fail is one clear error, never a traceback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from connectors import inbox_name
from connectors.config import ConfigError, parse_config

INBOX = "inbeeld.inbox.GM0518.q3Yx0cJ6y9mG0bQ1aW8tZw"


def config(tmp_path: Path, *, inbox: str | None = None, hub: bool = True):  # type: ignore[no-untyped-def]
    broker = {"url": "amqp://127.0.0.1:5672/x", "username": "u", "password": "p"}
    raw = {
        "tenant": "GM0518",
        "broker": {**broker, **({"inbox": inbox} if inbox else {})},
        "store": {"path": "c.db"},
        **({"hub": {"url": "http://hub.test", "token": "t"}} if hub else {}),
    }
    return parse_config(raw, tmp_path)


def answering(status: int, body: object = None, text: str | None = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/tenants/me" and request.headers["Authorization"] == "Bearer t"
        if text is not None:
            return httpx.Response(status, text=text)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


async def test_the_configured_name_wins_and_the_hub_is_not_asked(tmp_path: Path) -> None:
    assert await inbox_name.resolve(config(tmp_path, inbox=INBOX, hub=False)) == INBOX


async def test_the_hub_tells_the_name(tmp_path: Path) -> None:
    transport = answering(200, {"code": "GM0518", "inbox": INBOX})
    assert await inbox_name.ask_hub("http://hub.test", "t", transport=transport) == INBOX


@pytest.mark.parametrize(
    ("transport", "why"),
    [
        (answering(200, {"code": "GM0518", "inbox": None}), "no inbox for this tenant yet"),
        (answering(200, {"scope": "operator"}), "no inbox for this tenant yet"),
        (answering(401, {"detail": "bad token"}), "HTTP 401"),
        (answering(200, text="<html>"), "not JSON"),
        (answering(200, ["a", "list"]), "no inbox for this tenant yet"),
    ],
)
async def test_every_bad_answer_is_one_clear_error(transport: httpx.MockTransport, why: str) -> None:
    with pytest.raises(inbox_name.InboxNameUnknown, match=why):
        await inbox_name.ask_hub("http://hub.test", "t", transport=transport)


async def test_an_unreachable_hub_is_a_clear_error() -> None:
    with pytest.raises(inbox_name.InboxNameUnknown, match="cannot ask the hub"):
        await inbox_name.ask_hub("http://127.0.0.1:9", "t", timeout=2)


async def test_neither_a_name_nor_a_hub_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        await inbox_name.resolve(config(tmp_path, hub=False))
    assert caught.value.field == "broker.inbox" and "inbeeld tenant provision" in caught.value.message


def test_a_malformed_name_is_refused_by_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"broker\.inbox"):
        config(tmp_path, inbox="amq.gen-someone-elses")
