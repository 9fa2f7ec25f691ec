from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hub.store.db import Database


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated, empty hub store, once per backend."""
    database = Database(database_url)
    await database.migrate()
    yield database
    await database.close()
