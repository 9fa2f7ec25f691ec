"""Parties for end-to-end flows: each seed tenant with its own keystore, registered through the
real API (ASGI), a directory client and a `Sealer`, on the session's running hub."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from connectors import Connector
from connectors.directory import Directory
from connectors.hub_api import HubApi
from connectors.keystore import Keystore
from connectors.sealing import Sealer
from hub.api.app import create_app
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys

TENANTS = ("GM0518", "GM0599", "GM0307", "GM0957", "ingrado")


@dataclass
class Party:
    code: str
    keystore: Keystore
    directory: Directory
    sealer: Sealer
    connector: Connector

    async def register(self) -> None:
        """Register the keystore's keys as its connector does: with a rotation proof."""
        await self.directory.register(
            self.keystore.public_jwks(), tenant=self.code, signers=self.keystore.signing_keys()
        )


@pytest.fixture
def app(hub: RunningHub) -> FastAPI:
    return create_app(hub.settings, hub.db)


async def make_directory(hub: RunningHub, app: FastAPI, code: str) -> Directory:
    token = await hub.token("tenant", code)
    return Directory(HubApi("http://hub", token, transport=httpx.ASGITransport(app=app)))


@pytest.fixture
async def parties(hub: RunningHub, app: FastAPI, tmp_path: Path) -> AsyncIterator[dict[str, Party]]:
    out: dict[str, Party] = {}
    for code in TENANTS:
        ks = Keystore.create(tmp_path / f"{code}.keystore", kek=os.urandom(32))
        directory = await make_directory(hub, app, code)
        party = Party(code, ks, directory, Sealer(ks, directory, code), await hub.connector(code))
        await install_keys(hub, code, ks.public_jwks())  # a fresh keystore for a seed tenant
        out[code] = party
    yield out
    for party in out.values():
        await party.directory.api.aclose()
