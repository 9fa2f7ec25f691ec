"""Opening the hub's services (store, management API, AMQP) with clear errors, for the CLI,
the demo and tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aio_pika.abc import AbstractChannel
from sqlalchemy.exc import DBAPIError, OperationalError

from hub.broker.connection import connect
from hub.broker.management import Management
from hub.broker.topology import declare_core
from hub.config import Settings
from hub.errors import DatabaseUnavailable
from hub.store.db import Database


async def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    db = Database(settings.database_url)
    try:
        if migrate:
            await db.migrate()
        else:
            await db.ping()
    except (OSError, OperationalError, DBAPIError) as exc:
        await db.close()
        detail = type(getattr(exc, "orig", None) or exc).__name__
        raise DatabaseUnavailable(settings.redacted(settings.database_url), detail) from None
    return db


def management(settings: Settings) -> Management:
    user, password = settings.api_credentials
    return Management(settings.rabbitmq_api_url, user, password)


async def ensure_deployment(settings: Settings, mgmt: Management) -> None:
    """The vhost and the core topology exist (idempotent; an existing vhost keeps its
    description, which `inbeeld demo` marks its own vhosts by)."""
    if not await mgmt.vhost_exists(settings.vhost):
        await mgmt.create_vhost(settings.vhost)
    user, _ = settings.api_credentials
    await mgmt.set_permissions(settings.vhost, user, ".*", ".*", ".*")
    url = settings.amqp_url_for()
    conn = await connect(url, settings.redacted(url))
    try:
        channel = await conn.channel()
        await declare_core(channel, settings.delivery_limit)
    finally:
        await conn.close()


@asynccontextmanager
async def amqp_channel(settings: Settings) -> AsyncIterator[AbstractChannel]:
    url = settings.amqp_url_for()
    conn = await connect(url, settings.redacted(url))
    try:
        yield await conn.channel()
    finally:
        await conn.close()
