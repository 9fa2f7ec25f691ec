"""What demo steps share: each tenant's connector folder and keystore, its public keys
registered through the hub API (in process, ASGI), and a directory client.

A tenant keeps one keystore for the whole demo (`ctx.keystores`, created on first use under
`<out>/connectors/<code>/`, random KEK: demo only), so a later step re-registers the same
keys instead of rotating them away from under an earlier step's messages.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from connectors import Connector
from connectors.directory import Directory
from connectors.hub_api import HubApi
from connectors.keystore import Keystore
from demo.context import DemoContext
from hub import auth
from hub.api.app import create_app

__all__ = ["drain", "hub_transport", "keystore_for", "register_keys", "tenant_dir", "tenant_token"]


def tenant_dir(ctx: DemoContext, code: str) -> Path:
    """`<out>/connectors/<code>`: the tenant's keystore and local store."""
    base = ctx.out / "connectors" / code
    base.mkdir(parents=True, exist_ok=True)
    return base


def keystore_for(ctx: DemoContext, code: str) -> Keystore:
    if code not in ctx.keystores:
        ctx.keystores[code] = Keystore.create(tenant_dir(ctx, code) / "keystore.json", kek=os.urandom(32))
    return ctx.keystores[code]


def hub_transport(ctx: DemoContext) -> httpx.AsyncBaseTransport:
    """The hub API in process."""
    return httpx.ASGITransport(app=create_app(ctx.settings, ctx.db))


async def tenant_token(ctx: DemoContext, code: str, label: str = "demo") -> str:
    async with ctx.db.session() as s, s.begin():
        _, token = await auth.issue(s, "tenant", code, label)
    return token


async def register_keys(
    ctx: DemoContext, code: str, transport: httpx.AsyncBaseTransport
) -> tuple[Keystore, Directory]:
    """The tenant's keystore, its public keys registered with the hub, and a directory client
    (the caller closes its `api`)."""
    keystore = keystore_for(ctx, code)
    directory = Directory(HubApi("http://hub", await tenant_token(ctx, code), transport=transport))
    await directory.register(keystore.public_jwks())
    return keystore, directory


async def drain(connector: Connector, quiet: float = 0.5) -> int:
    """Ack whatever is in the inbox (e.g. the `key.rotated` a registration announces)."""
    n = 0
    async for message in connector.inbox(idle_timeout=quiet):
        await message.ack()
        n += 1
    return n
