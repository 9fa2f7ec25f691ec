"""A tenant's inbox read by a plain consumer, as a connector would hold it: while it runs the
broker counts a consumer on the inbox; every message is acknowledged and kept as JSON."""

from __future__ import annotations

import json
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection

from tests.utils.hubs import RunningHub


class InboxReader:
    def __init__(self, hub: RunningHub, code: str) -> None:
        self.hub = hub
        self.code = code
        self.events: list[dict[str, Any]] = []
        self._conn: AbstractRobustConnection | None = None

    async def start(self) -> InboxReader:
        self._conn = await aio_pika.connect_robust(self.hub.tenant_url(self.code))
        channel = await self._conn.channel()
        queue = await channel.get_queue(self.hub.inbox(self.code), ensure=False)
        await queue.consume(self._on_message)
        return self

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.events.append(json.loads(message.body))
        await message.ack()

    def of_type(self, short_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == "nl.leerplicht." + short_type]

    async def stop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
