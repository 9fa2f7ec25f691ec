"""Fixtures that start real things: a RabbitMQ vhost per test run, a database per backend
(SQLite file and a fresh PostgreSQL database), a running hub with the five seed tenants.

Everything a run creates carries its run id and is removed afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from hub.config import Settings
from schemas.observability import configure_logging
from tests.utils.hubs import RunningHub, remove_deployment, start_hub
from tests.utils.rabbit import remove_slowly

RUN_ID = uuid.uuid4().hex[:8]
configure_logging("json", "INFO")
PG_ADMIN_DSN = os.environ.get("INBEELD_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def run_id() -> str:
    return RUN_ID


def base_settings(**overrides: object) -> Settings:
    """Settings from the environment (INBEELD_*), with the test's own vhost and database."""
    return Settings(**overrides)  # type: ignore[arg-type]


async def _pg_create(name: str) -> str:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


async def _pg_drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def tmp_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("inbeeld")


async def make_database_url(backend: str, label: str, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / f'{label}.db'}"
    return await _pg_create(f"inbeeld_test_{RUN_ID}_{label}")


async def drop_database(backend: str, label: str) -> None:
    if backend == "postgres":
        await _pg_drop(f"inbeeld_test_{RUN_ID}_{label}")


@asynccontextmanager
async def private_hub(settings: Settings, backend: str, label: str) -> AsyncIterator[RunningHub]:
    """A hub of a test module's own (its settings, vhost and database `label`), removed after."""
    hub = None
    try:
        hub = await start_hub(settings)
        yield hub
    finally:
        if hub is not None:
            await hub.close()
        await remove_slowly(settings)
        await drop_database(backend, label)


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database per test, once per backend."""
    label = f"{request.param}_{uuid.uuid4().hex[:6]}"
    yield await make_database_url(request.param, label, tmp_path)
    await drop_database(request.param, label)


@pytest.fixture(scope="session", params=BACKENDS)
async def hub(request: pytest.FixtureRequest, tmp_session: Path) -> AsyncIterator[RunningHub]:
    """A running hub (router + store + provisioned seed tenants) on its own vhost, per backend."""
    backend = request.param
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{backend}",
        database_url=await make_database_url(backend, "hub", tmp_session),
        delivery_limit=3,
    )
    running = await start_hub(settings)
    yield running
    await running.close()
    await remove_deployment(settings)
    await drop_database(backend, "hub")
