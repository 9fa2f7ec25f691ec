"""Where a connector learns the name of its inbox queue.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

The hub names each tenant's inbox `inbeeld.inbox.<code>.<random>`: unguessable, so no other
tenant can probe it. The tenant learns the name from its provisioning (`inbeeld tenant
provision` prints it; put it in `[broker] inbox`) or asks the hub (`GET /tenants/me` with
the tenant's API token, `[hub]`). A configured name wins; asking the hub follows a move
(`inbeeld migrate`) without editing the config.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from connectors.config import ConfigError, ConnectorConfig
from connectors.hub_api import HubApi
from schemas.errors import InbeeldError

__all__ = ["InboxNameUnknown", "ask_hub", "check_configured", "resolve"]


class InboxNameUnknown(InbeeldError):
    """The hub could not be asked, or does not (yet) know our inbox."""

    reason = "inbox_name_unknown"


async def ask_hub(
    url: str,
    token: str,
    *,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """The inbox name the hub reports for the tenant whose API token this is."""
    try:
        async with HubApi(url, token, timeout=timeout, transport=transport, ssl_context=ssl_context) as api:
            body: Any = await api.get("/tenants/me")
    except InbeeldError as exc:
        raise InboxNameUnknown(f"cannot ask the hub for our inbox name: {exc.message}") from None
    inbox = body.get("inbox") if isinstance(body, dict) else None
    if not isinstance(inbox, str) or not inbox:
        raise InboxNameUnknown("the hub has no inbox for this tenant yet (not provisioned?)")
    return inbox


def check_configured(config: ConnectorConfig) -> None:
    """`ConfigError` unless the config names the inbox or lets us ask the hub for it."""
    if config.broker.inbox is None and (config.hub is None or config.hub.resolved_token() is None):
        raise ConfigError(
            "broker.inbox: set it (printed by `inbeeld tenant provision`) or configure [hub] "
            "with a token so the connector can ask the hub",
            field="broker.inbox",
        )


async def resolve(config: ConnectorConfig) -> str:
    """`[broker] inbox` if set, else the hub's answer. `ConfigError` when neither is possible,
    `InboxNameUnknown` when the hub cannot tell."""
    check_configured(config)
    if config.broker.inbox is not None:
        return config.broker.inbox
    assert config.hub is not None
    token = config.hub.resolved_token() or ""
    return await ask_hub(config.hub.url, token, ssl_context=config.tls.client_context())
