"""The attacks of a tenant on a live hub (its own broker credentials and API token), replayed
against a running hub on both stores. Each module holds one family of attacks; every test
asserts the refusal, that nothing was delivered, and that nothing was recorded under the
victim's name."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from connectors.keystore import Keystore
from connectors.sealing import Sealer
from hub.api.app import create_app
from tests.e2e.conftest import Party, make_directory
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys


@pytest.fixture
async def parties(hub: RunningHub, tmp_path: Path) -> AsyncIterator[dict[str, Party]]:
    """Den Haag and Rotterdam with fresh keystores, installed the operator's way."""
    app = create_app(hub.settings, hub.db)
    out: dict[str, Party] = {}
    for code in ("GM0518", "GM0599"):
        ks = Keystore.create(tmp_path / f"{code}.keystore", kek=os.urandom(32))
        directory = await make_directory(hub, app, code)
        party = Party(code, ks, directory, Sealer(ks, directory, code), await hub.connector(code))
        await install_keys(hub, code, ks.public_jwks())  # a fresh keystore for a seed tenant
        out[code] = party
    yield out
    for party in out.values():
        await party.directory.api.aclose()
