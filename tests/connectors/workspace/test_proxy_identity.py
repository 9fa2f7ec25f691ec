"""Single sign-on through the municipality's reverse proxy: the login name in the trusted
header is the account, with its role, only on requests straight from a trusted proxy; the
header from anywhere else is ignored; a name without an account gets a clear page; an `--sso`
account has no password that works."""

from __future__ import annotations

import asyncio
import json
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors import accounts, offers, processing_log
from connectors.config import ConfigError, parse_config
from connectors.keystore import Keystore
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.transfers import new_transfer_id, validate_dossier
from connectors.workspace import create_workspace
from connectors.workspace.identity import ProxyIdentity

DOSSIER = json.loads((Path(__file__).parents[2] / "data" / "dossier.example.json").read_text("utf-8"))
HEADER = "X-Remote-User"
CONFIG = """
tenant = "GM0599"
[broker]
url = "amqp://127.0.0.1:5672/nothing"
username = "nobody"
[store]
path = "connector.db"
[workspace]
trusted_header = "X-Remote-User"
trusted_proxies = ["127.0.0.1/32", "10.20.0.0/16"]
"""


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[ConnectorServices]:
    (tmp_path / "connector.toml").write_text(CONFIG, "utf-8")
    config = parse_config(tomllib.loads(CONFIG), tmp_path)
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase="workspace test", scrypt_n=2**14)
    store = await LocalStore.open(config.store.path, keystore)
    try:
        yield ConnectorServices(config, keystore=keystore, store=store)
    finally:
        await store.close()


def _client(services: ConnectorServices, peer: str) -> httpx.AsyncClient:
    settings = services.config.workspace
    assert settings is not None and settings.trusted_header == HEADER
    proxy = ProxyIdentity.of(settings.trusted_header, [str(n) for n in settings.trusted_proxies])
    app = create_workspace(services, secret="a test secret of the workspace", proxy=proxy)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://workspace")


async def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        *args,
        "-c",
        str(tmp_path / "connector.toml"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_the_proxy_vouches_for_an_sso_account_and_no_one_else(
    services: ConnectorServices, tmp_path: Path
) -> None:
    store = services.store
    assert store is not None
    code, out = await _cli(tmp_path, "user", "add", "sofie", "--role", "officer", "--sso")
    assert code == 0 and "account sofie added with role officer" in out, out
    transfer_id = new_transfer_id("GM0518")
    await offers.keep(store, "ev-1", "GM0518", validate_dossier({**DOSSIER, "transfer_id": transfer_id}))
    family_name = DOSSIER["pupil"]["family_name"]

    # From the proxy (a trusted network), the header is the login: the dossier opens, and the
    # processing log names the person the proxy vouched for.
    async with _client(services, "10.20.3.4") as proxied:
        r = await proxied.get(f"/offers/{transfer_id}", headers={HEADER: "sofie"})
        assert r.status_code == 200 and family_name in r.text
        [entry] = await processing_log.entries(store)
        assert entry.user_name == "sofie"
        # Without the header the proxy's request is nobody's: the login page.
        r = await proxied.get("/")
        assert r.status_code == 303 and r.headers["location"].endswith("/login")
        # A name the workspace does not know: a clear page, no dossier.
        r = await proxied.get(f"/offers/{transfer_id}", headers={HEADER: "mallory"})
        assert r.status_code == 403 and "geen account in deze werkruimte" in r.text
        assert family_name not in r.text

    # Past the proxy, the same header is ignored: not logged in.
    async with _client(services, "192.0.2.7") as direct:
        r = await direct.get(f"/offers/{transfer_id}", headers={HEADER: "sofie"})
        assert r.status_code == 303 and r.headers["location"].endswith("/login")
    assert len(await processing_log.entries(store)) == 1

    # The --sso account has no password anyone knows: its login is the proxy's.
    assert (await accounts.attempt(store, "sofie", "")).outcome == "refused"


def test_the_trusted_proxies_must_be_networks(tmp_path: Path) -> None:
    raw = tomllib.loads(CONFIG.replace('"10.20.0.0/16"', '"the proxy"'))
    with pytest.raises(ConfigError) as refused:
        parse_config(raw, tmp_path)
    assert "trusted_proxies" in str(refused.value)
    raw = tomllib.loads(CONFIG.replace('"X-Remote-User"', '"X-Remote User: x"'))
    with pytest.raises(ConfigError) as refused:
        parse_config(raw, tmp_path)
    assert "trusted_header" in str(refused.value)
