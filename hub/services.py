"""Opening the hub's services (store, management API, AMQP) with clear errors, for the CLI,
the demo and tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aio_pika.abc import AbstractChannel
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from hub.broker.connection import connect
from hub.broker.management import Management
from hub.broker.topology import declare_core
from hub.config import Settings
from hub.errors import DatabaseMissing, DatabaseUnavailable
from hub.store.db import Database


async def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    shown = settings.redacted(settings.database_url)
    folder = _missing_sqlite_folder(settings.database_url)
    if folder is not None:  # said before connecting: aiosqlite's failed connect is messy
        raise DatabaseMissing(shown, folder)
    db = Database(settings.database_url)
    try:
        if migrate:
            await db.migrate()
        else:
            await db.ping()
    except (OSError, OperationalError, DBAPIError) as exc:
        await db.close()
        missing = _missing_database(settings.database_url, exc)
        if missing is not None:
            raise DatabaseMissing(shown, missing) from None
        detail = type(getattr(exc, "orig", None) or exc).__name__
        raise DatabaseUnavailable(shown, detail) from None
    return db


def _missing_sqlite_folder(url: str) -> str | None:
    parts = make_url(url)
    if parts.get_backend_name() != "sqlite" or not parts.database or parts.database == ":memory:":
        return None
    folder = Path(parts.database).parent
    if folder.is_dir():
        return None
    return f"The SQLite database {parts.database} cannot be made: its folder {folder} does not exist"


def _missing_database(url: str, exc: BaseException) -> str | None:
    """What to do when the server answered but has no such database (None: another fault)."""
    parts = make_url(url)
    orig = getattr(exc, "orig", None)
    if str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "") != "3D000":
        return None
    where = f"{parts.host or 'localhost'}:{parts.port or 5432}"
    return (
        f"The database {parts.database} does not exist on the PostgreSQL server at {where}: "
        f"create it (`createdb -h {parts.host or 'localhost'} -p {parts.port or 5432} "
        f"-O {parts.username or 'postgres'} {parts.database}`) or fix INBEELD_DATABASE_URL"
    )


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
    conn = await connect(url, settings.redacted(url), ssl_context=settings.amqp_ssl_context())
    try:
        channel = await conn.channel()
        await declare_core(channel, settings.delivery_limit)
    finally:
        await conn.close()


@asynccontextmanager
async def amqp_channel(settings: Settings) -> AsyncIterator[AbstractChannel]:
    url = settings.amqp_url_for()
    conn = await connect(url, settings.redacted(url), ssl_context=settings.amqp_ssl_context())
    try:
        yield await conn.channel()
    finally:
        await conn.close()
