"""Engine, sessions and migrations.

The store adapter: what the database library raises when the store is briefly away
(`store_away`: the connection lost or refused, a timeout, the server shutting down or out of
resources, a transaction the server rolled back for a conflict) leaves `Database.session()`
as the project's `hub.errors.Transient`, the library error as its `__cause__`. Callers decide
retry on that one type and never match SQLAlchemy's or the driver's exceptions themselves.
Other store errors (a value it cannot hold, a duplicate key, a bug in a query) pass unchanged:
retrying them changes nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hub.errors import Transient

MIGRATIONS = Path(__file__).with_name("migrations")

# SQLSTATE classes of a store briefly away: connection exception, transaction rollback
# (serialization failure, deadlock), insufficient resources, and operator intervention
# (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now).
_AWAY_SQLSTATES = ("08", "40", "53", "57P")


_NOT_AWAY = re.compile(r"no such (table|column|index)|syntax error|has no column")


def store_away(exc: BaseException) -> bool:
    """Whether `exc`, raised by the database library, means the store is briefly away (worth
    retrying). (TimeoutError and ConnectionError are OSErrors.)"""
    if isinstance(exc, OSError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if isinstance(exc, OperationalError) and _NOT_AWAY.search(str(exc.orig)):
        return False  # SQLite names a broken schema or statement OperationalError too: a bug
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    return sqlstate.startswith(_AWAY_SQLSTATES)


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """The hub's connection to its store."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; the store briefly away, in it or at its commit, raises `Transient`."""
        try:
            async with self.sessions() as s:
                yield s
        except (DBAPIError, OSError) as exc:
            if not store_away(exc):
                raise
            raise Transient(f"the store is away ({type(exc).__name__})") from exc

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def current_revision(self) -> tuple[str, ...]:
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current)

    async def close(self) -> None:
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


MIGRATION_LOCK = 0x1B_EE1D  # PostgreSQL advisory lock id: one migrator at a time


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # API and routers may start together against a fresh database.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
    command.upgrade(alembic_config(connection), "heads")


def _current(connection: Connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def head_revisions() -> tuple[str, ...]:
    """Every head: flows add their tables as branches from the base revision."""
    from alembic.script import ScriptDirectory

    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))
