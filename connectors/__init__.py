"""Inbeeld connector: what a tenant runs beside its own case system.

The SDK, importable from here::

    from connectors import Connector, HubApi, Directory, Sealer, Keystore, load_config

    config = load_config("connector.toml")
    keystore = Keystore.from_env(config.keystore.path)
    async with HubApi(config.hub.url, token) as api:
        sealer = Sealer(keystore, Directory(api), config.tenant)
        async with Connector(tenant="GM0518", amqp_url=..., inbox_name=..., sealer=sealer) as c:
            await c.send("nl.leerplicht.ping", {"text": "hello"}, recipients=["GM0599"])
            async for message in c.inbox():          # an InboxMessage: .event, .payload
                ...
                await message.ack()

Errors a caller catches: `InbeeldError` (the root of every refusal, `schemas.errors`),
`ConnectorError`/`InboxUnavailable` (the broker), `ConfigError`, `KeystoreError`,
`HubApiError` (the hub's API) and `NotFound`/`Conflict`/`KeyReplacementRefused` (what the hub
refused). The flows have their own modules: `connectors.transfers`, `connectors.notices`,
`connectors.templates`. The other modules (`runtime`, `services`, `store`, `at_rest`,
`sinks`, `outbox`, `sources`, `register`, `group_keys`, `inbox_name`, `cli`) are the connector's own
machinery behind `inbeeld-connector run`, not SDK.
"""

from connectors.client import (
    Connector,
    ConnectorError,
    ConnectorStats,
    EventSealer,
    InboxMessage,
    InboxState,
    InboxStatus,
    InboxUnavailable,
    MemoryInboxState,
)
from connectors.config import ConfigError, ConnectorConfig, load_config
from connectors.directory import Directory
from connectors.hub_api import HubApi, HubApiError
from connectors.keystore import Keystore, KeystoreError
from connectors.sealing import Sealer
from schemas.envelope import CloudEvent
from schemas.errors import Conflict, InbeeldError, KeyReplacementRefused, NotFound
from schemas.events import Payload

__all__ = [
    "CloudEvent",
    "ConfigError",
    "Conflict",
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "ConnectorStats",
    "Directory",
    "EventSealer",
    "HubApi",
    "HubApiError",
    "InbeeldError",
    "InboxMessage",
    "InboxState",
    "InboxStatus",
    "InboxUnavailable",
    "KeyReplacementRefused",
    "Keystore",
    "KeystoreError",
    "MemoryInboxState",
    "NotFound",
    "Payload",
    "Sealer",
    "load_config",
]
