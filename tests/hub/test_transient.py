"""The store and broker adapters turn their libraries' "briefly away" errors into the one
project error the router retries on (`hub.errors.Transient`), and nothing else."""

from __future__ import annotations

import aio_pika
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from hub.broker.connection import broker_away
from hub.errors import Transient
from hub.store.db import Database, store_away
from hub.store.models import Tenant, utcnow
from schemas.errors import InbeeldError
from tests.conftest import base_settings


async def test_a_store_that_cannot_be_reached_is_transient() -> None:
    gone = Database("postgresql+asyncpg://inbeeld@127.0.0.1:1/nowhere")  # nothing listens on port 1
    try:
        with pytest.raises(Transient) as caught:
            async with gone.session() as s:
                await s.execute(text("SELECT 1"))
    finally:
        await gone.close()
    assert caught.value.__cause__ is not None and store_away(caught.value.__cause__)


@pytest.mark.postgres
async def test_a_store_error_that_is_no_outage_passes_unchanged(db: Database) -> None:
    row = {"kind": "municipality", "name": "x", "active": True, "created_at": utcnow()}
    with pytest.raises(IntegrityError):  # a duplicate key: retrying changes nothing
        async with db.session() as s, s.begin():
            s.add(Tenant(code="GM0001", oin="00000001000000000001", **row))
            await s.flush()
            s.add(Tenant(code="GM0002", oin="00000001000000000001", **row))
            await s.flush()
    with pytest.raises(RuntimeError):  # a bug is no outage either
        async with db.session() as s:
            await s.scalar(select(Tenant.code).limit(1))
            raise RuntimeError("a bug")


@pytest.mark.broker
async def test_a_closed_channel_is_transient_and_a_bug_is_not() -> None:
    settings = base_settings()
    connection = await aio_pika.connect(settings.amqp_url)
    try:
        channel = await connection.channel()
        await channel.close()
        with pytest.raises(Transient) as caught:
            async with broker_away():
                await channel.default_exchange.publish(aio_pika.Message(b"x"), routing_key="nowhere")
        assert caught.value.__cause__ is not None
        with pytest.raises(RuntimeError) as bug:
            async with broker_away():
                raise RuntimeError("a bug")
        assert not isinstance(bug.value, InbeeldError)
    finally:
        await connection.close()


async def test_a_store_without_its_tables_is_a_bug_not_an_outage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # SQLite reports a missing table as an OperationalError, as it does a locked database:
    # retrying would loop for ever on a store nobody migrated.
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(Exception) as raised:
            async with db.session() as s:
                await s.execute(select(Tenant))
        assert not isinstance(raised.value, Transient) and not store_away(raised.value)
    finally:
        await db.close()
