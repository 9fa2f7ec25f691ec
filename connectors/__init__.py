"""Inbeeld connector: what a tenant runs beside its own case system.

Public API::

    from connectors import Connector, InboxMessage

    async with Connector(tenant="GM0518", amqp_url=..., inbox_name=..., system="leerlingzaken") as c:
        await c.send("nl.leerplicht.ping", {"text": "hello"}, recipients=["GM0599"])
        async for message in c.inbox():
            ...
            await message.ack()
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

__all__ = [
    "Connector",
    "ConnectorError",
    "ConnectorStats",
    "EventSealer",
    "InboxMessage",
    "InboxState",
    "InboxStatus",
    "InboxUnavailable",
    "MemoryInboxState",
]
