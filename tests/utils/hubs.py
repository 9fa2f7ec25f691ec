"""A running hub for tests: its own vhost and database, the five seed tenants provisioned,
the router consuming, and a connector per tenant on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import aio_pika

from connectors import Connector, InboxMessage
from hub import auth, provisioning
from hub.config import Settings
from hub.provisioning import BrokerCredentials
from hub.router import Router
from hub.seed import seed_all
from hub.services import amqp_channel, ensure_deployment, management, open_database
from hub.store.db import Database
from schemas.envelope import CloudEvent


@dataclass
class RunningHub:
    settings: Settings
    db: Database
    router: Router
    creds: dict[str, BrokerCredentials]
    connectors: dict[str, Connector] = field(default_factory=dict)

    def tenant_url(self, code: str) -> str:
        c = self.creds[code]
        return self.settings.amqp_url_for(user=c.username, password=c.password)

    def inbox(self, code: str) -> str:
        """The tenant's inbox queue, as its provisioning reported it."""
        inbox = self.creds[code].inbox
        assert inbox is not None, f"{code} has no inbox"
        return inbox

    async def connector(self, code: str) -> Connector:
        if code not in self.connectors:
            c = Connector(code, self.tenant_url(code), inbox_name=self.inbox(code), system="test")
            await c.connect()
            self.connectors[code] = c
        return self.connectors[code]

    async def token(self, scope: str, tenant: str | None = None) -> str:
        async with self.db.session() as s, s.begin():
            _, token = await auth.issue(s, scope, tenant)  # type: ignore[arg-type]
        return token

    async def publish_raw(
        self, code: str, body: bytes, *, user_id: str | None = None, routing_key: str = "nl.leerplicht.ping"
    ) -> None:
        """Publish arbitrary bytes to the ingress as tenant `code` (for bad-input tests)."""
        conn = await aio_pika.connect(self.tenant_url(code))
        try:
            ch = await conn.channel(publisher_confirms=True)
            ex = await ch.get_exchange("inbeeld.ingress", ensure=False)
            await ex.publish(
                aio_pika.Message(
                    body,
                    user_id=user_id or self.creds[code].username,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=routing_key,
            )
        finally:
            await conn.close()

    async def receive(
        self, code: str, want: Callable[[CloudEvent], bool], *, count: int = 1, timeout: float = 10.0
    ) -> list[CloudEvent]:
        """Read `code`'s inbox until `count` events matching `want` arrived (acking all read).
        Raises TimeoutError if they do not come."""
        c = await self.connector(code)
        got: list[CloudEvent] = []

        async def read() -> None:
            message: InboxMessage
            async for message in c.inbox(idle_timeout=timeout):
                await message.ack()
                if want(message.event):
                    got.append(message.event)
                    if len(got) >= count:
                        return

        await asyncio.wait_for(read(), timeout)
        if len(got) < count:
            raise TimeoutError(f"{code} received {len(got)} of {count} expected events")
        return got

    async def drain(self, code: str, quiet: float = 0.5) -> list[CloudEvent]:
        """Everything currently in `code`'s inbox (until `quiet` seconds pass without one)."""
        c = await self.connector(code)
        got = []
        async for message in c.inbox(idle_timeout=quiet):
            await message.ack()
            got.append(message.event)
        return got

    async def close(self) -> None:
        for c in self.connectors.values():
            await c.close()
        await self.router.stop()
        await self.db.close()


async def start_hub(settings: Settings) -> RunningHub:
    db = await open_database(settings)
    creds: dict[str, BrokerCredentials] = {}
    async with management(settings) as mgmt:
        await ensure_deployment(settings, mgmt)
        async with amqp_channel(settings) as channel, db.session() as s, s.begin():
            for t in await seed_all(s):
                creds[t.code] = await provisioning.provision_tenant(s, mgmt, channel, settings, t.code)
    router = Router(settings, db)
    await router.start()
    return RunningHub(settings, db, router, creds)


async def remove_deployment(settings: Settings) -> None:
    async with management(settings) as mgmt:
        await mgmt.delete_vhost(settings.vhost)
        for user in await mgmt.list_users():
            if user["name"].startswith(settings.vhost + "."):
                await mgmt.delete_user(user["name"])
