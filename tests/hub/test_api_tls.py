"""The API served over HTTPS by the configuration `inbeeld serve` uses (`hub.api.server`), asking
clients for a certificate (INBEELD_API_TLS_CLIENT_CERT=required), and the connector's one
client of it (`HubApi`) with and without the right certificate."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
import uvicorn

from connectors.config import TlsConfig
from connectors.hub_api import HubApi, HubApiError
from hub.api.app import create_app
from hub.api.server import server_config
from tests.conftest import RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.certificates import Issued, TestCa
from tests.utils.hubs import RunningHub

pytestmark = [pytest.mark.broker]


class _Api(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # pytest owns the signals

    @property
    def port(self) -> int:
        return int(self.servers[0].sockets[0].getsockname()[1])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | Issued | TestCa]:
    folder = tmp_path_factory.mktemp("api-pki")
    ca = TestCa(folder, stem="ca")
    other = TestCa(folder, "Another Root CA")
    return {
        "ca": ca,
        "server": ca.server("api"),
        "client": ca.client("connector"),
        "other": other,
        "stranger": other.client("stranger"),
    }


@pytest.fixture(scope="module")
async def tls_hub(tmp_session: Path, pki: dict[str, Path | Issued | TestCa]) -> AsyncIterator[RunningHub]:
    ca, server = pki["ca"], pki["server"]
    assert isinstance(ca, TestCa) and isinstance(server, Issued)
    label = f"apitls_{uuid.uuid4().hex[:6]}"
    settings = base_settings(
        vhost=f"inbeeld-test-{RUN_ID}-{label}",
        database_url=await make_database_url("sqlite", label, tmp_session),
        api_tls_cert_file=server.cert,
        api_tls_key_file=server.key,
        api_tls_client_ca_file=ca.cert,
        api_tls_client_cert="required",
    )
    async with private_hub(settings, "sqlite", label) as hub:
        yield hub


@pytest.fixture(scope="module")
async def api_url(tls_hub: RunningHub) -> AsyncIterator[str]:
    config = server_config(
        create_app(tls_hub.settings, tls_hub.db), tls_hub.settings, host="127.0.0.1", port=0
    )
    config.log_level = "warning"
    server = _Api(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    assert config.ssl is not None and config.ssl.minimum_version >= ssl.TLSVersion.TLSv1_2
    yield f"https://localhost:{server.port}"
    server.should_exit = True
    await asyncio.gather(task, return_exceptions=True)


def client_tls(pki: dict[str, Path | Issued | TestCa], ca: str, cert: str | None) -> ssl.SSLContext:
    """The connector's context, made from its [tls] section."""
    authority, issued = pki[ca], pki[cert] if cert else None
    assert isinstance(authority, TestCa) and (issued is None or isinstance(issued, Issued))
    return TlsConfig(
        ca_file=authority.cert,
        cert_file=issued.cert if issued else None,
        key_file=issued.key if issued else None,
    ).client_context()


async def test_a_connector_with_the_right_certificate_is_served(
    api_url: str, tls_hub: RunningHub, pki: dict[str, Path | Issued | TestCa]
) -> None:
    token = await tls_hub.token("tenant", "GM0518")
    async with HubApi(api_url, token, ssl_context=client_tls(pki, "ca", "client")) as api:
        assert await api.health() == 200
        me = await api.get("/tenants/me")
    assert me["code"] == "GM0518" and me["inbox"] == tls_hub.inbox("GM0518")


@pytest.mark.parametrize("cert", [None, "stranger"], ids=["no certificate", "another CA's certificate"])
async def test_a_connector_without_the_right_certificate_is_refused(
    cert: str | None, api_url: str, tls_hub: RunningHub, pki: dict[str, Path | Issued | TestCa]
) -> None:
    token = await tls_hub.token("tenant", "GM0518")
    port = api_url.rsplit(":", 1)[1]
    async with HubApi(api_url, token, ssl_context=client_tls(pki, "ca", cert)) as api:
        with pytest.raises(HubApiError) as refused:
            await api.get("/tenants/me")
    message = refused.value.message
    assert message.startswith(f"cannot ask the hub for GET /tenants/me: the hub's API at localhost:{port} ")
    if cert is None:
        assert "a client certificate, and none is configured (cert_file)" in message
    else:
        assert "our client certificate" in message
    assert refused.value.status is None  # no answer at all: nothing was served


async def test_an_api_certificate_from_another_ca_is_refused(
    api_url: str, pki: dict[str, Path | Issued | TestCa]
) -> None:
    port = api_url.rsplit(":", 1)[1]
    async with HubApi(api_url, None, ssl_context=client_tls(pki, "other", "client")) as api:
        with pytest.raises(HubApiError) as refused:
            await api.health()
    assert refused.value.message.startswith(
        f"the hub's API at localhost:{port} presented a certificate we do not trust ("
    )


def test_serve_names_a_tls_setting_that_cannot_be_used(
    tmp_path: Path, pki: dict[str, Path | Issued | TestCa]
) -> None:
    server = pki["server"]
    assert isinstance(server, Issued)
    env = {
        **os.environ,
        "INBEELD_API_TLS_CERT_FILE": str(server.cert),
        "INBEELD_API_TLS_KEY_FILE": str(server.key),
        "INBEELD_API_TLS_CLIENT_CERT": "required",
        # Nothing listens here: the settings are refused before anything is started.
        "INBEELD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'never.db'}",
        "INBEELD_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from hub.cli import main; main()", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "INBEELD_API_TLS_CLIENT_CA_FILE: checking client certificates needs the CA bundle" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "never.db").exists()
