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

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
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

# The SDK's names are imported on first use (PEP 562), so that `inbeeld-connector --help` and
# the other modules of the package do not pay for the broker client and its cryptography.
_WHERE = {
    "connectors.client": (
        "Connector",
        "ConnectorError",
        "ConnectorStats",
        "EventSealer",
        "InboxMessage",
        "InboxState",
        "InboxStatus",
        "InboxUnavailable",
        "MemoryInboxState",
    ),
    "connectors.config": ("ConfigError", "ConnectorConfig", "load_config"),
    "connectors.directory": ("Directory",),
    "connectors.hub_api": ("HubApi", "HubApiError"),
    "connectors.keystore": ("Keystore", "KeystoreError"),
    "connectors.sealing": ("Sealer",),
    "schemas.envelope": ("CloudEvent",),
    "schemas.errors": ("Conflict", "InbeeldError", "KeyReplacementRefused", "NotFound"),
    "schemas.events": ("Payload",),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
