"""Mutual TLS on the broker link, as deploy/rabbitmq/tls.conf sets it up: a RabbitMQ node of this
module's own (tests/utils/rabbit_node.py) runs that file's TLS options with a test CA made here,
the hub declares its topology over AMQPS with its own client certificate, and a connector with
the right certificate checks, publishes and consumes; one without a certificate, with another
CA's, or addressing the broker by a name its certificate does not carry is refused, with one
clear line naming host and port."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
from typer.testing import CliRunner

from connectors.cli import app
from connectors.client import ConnectorError
from connectors.config import ConfigError, load_config
from connectors.services import open_services
from hub.broker.connection import BrokerAccessRefused
from hub.broker.topology import DELIVERY, ROUTER_QUEUE, declare_core, declare_inbox
from hub.config import Settings
from hub.services import amqp_channel
from tests.utils.certificates import Issued, TestCa
from tests.utils.rabbit_node import Node, free_port, start_node

pytestmark = [pytest.mark.slow, pytest.mark.broker]

ROOT = Path(__file__).resolve().parents[2]
TLS_CONF = ROOT / "deploy" / "rabbitmq" / "tls.conf"
VHOST = "inbeeld"
TENANT = "GM0518"
USER = "inbeeld.GM0518"
PASSWORD = "tenant-password-0518"
INBOX = "inbeeld.inbox.GM0518.tlstest"
runner = CliRunner()
NO_BROKER = 1  # a port nothing listens on: the TLS files are checked before any link is tried


@dataclass
class TlsBroker:
    node: Node
    port: int
    ca: TestCa
    hub_client: Issued
    client: Issued
    other_ca: TestCa
    stranger: Issued

    def hub_settings(self, **overrides: object) -> Settings:
        values: dict[str, object] = {
            "amqp_url": f"amqps://inbeeld-hub:hub-password@localhost:{self.port}/",
            "vhost": VHOST,
            "amqp_tls_ca_file": self.ca.cert,
            "amqp_tls_cert_file": self.hub_client.cert,
            "amqp_tls_key_file": self.hub_client.key,
        }
        return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def node_config(folder: Path, tls_port: int, plain_port: int) -> str:
    """deploy/rabbitmq/tls.conf with this node's listeners and certificate paths."""
    lines = [
        line
        for line in TLS_CONF.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#") and not line.startswith("listeners.")
    ]
    text = "\n".join(lines).replace("/etc/rabbitmq/tls/", f"{folder}/")
    assert f"{folder}/server.pem" in text and "fail_if_no_peer_cert = true" in text
    return (
        f"listeners.tcp.1 = 127.0.0.1:{plain_port}\n"
        # A second address, which the server's certificate does not name.
        f"listeners.ssl.1 = 127.0.0.1:{tls_port}\n"
        f"listeners.ssl.2 = 127.0.0.2:{tls_port}\n"
        f"{text}\n"
        "log.file.level = info\n"
    )


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    # Not under pytest's tmp folder: the rabbitmq user must reach the certificates.
    folder = Path(tempfile.mkdtemp(prefix="inbeeld-tls-node-"))
    ca = TestCa(folder, stem="ca")  # the names deploy/rabbitmq/tls.conf uses
    ca.server("server")
    clients = tmp_path_factory.mktemp("tls-clients")
    other = TestCa(clients, "Another Root CA")
    tls_port, plain_port = free_port(), free_port()
    with start_node(folder, node_config(folder, tls_port, plain_port), node_port=plain_port) as node:
        node.ctl("add_vhost", VHOST)
        node.ctl("add_user", "inbeeld-hub", "hub-password")
        node.ctl("set_permissions", "-p", VHOST, "inbeeld-hub", ".*", ".*", ".*")
        node.ctl("add_user", USER, PASSWORD)
        node.ctl("set_permissions", "-p", VHOST, USER, "^$", r"^inbeeld\.ingress$", f"^{re.escape(INBOX)}$")
        yield TlsBroker(
            node,
            tls_port,
            ca,
            ca.client("hub", "hub.inbeeld.example", folder=clients),
            ca.client("connector", "connector.gm0518.example", folder=clients),
            other,
            other.client("stranger", "connector.gm0518.example"),
        )


@pytest.fixture(scope="module")
def topology(tls_broker: TlsBroker) -> None:
    """The hub, over AMQPS with its own client certificate (INBEELD_AMQP_TLS_*), declares its
    topology and our tenant's inbox."""

    async def declare() -> None:
        settings = tls_broker.hub_settings()
        async with amqp_channel(settings) as channel:
            await declare_core(channel, settings.delivery_limit)
            await declare_inbox(channel, INBOX, TENANT, settings.delivery_limit, 1000)

    asyncio.run(declare())


def write_config(tmp_path: Path, port: int, *, host: str = "localhost", tls: str) -> Path:
    path = tmp_path / "connector.toml"
    path.write_text(
        f"""
tenant = "{TENANT}"
system = "leerlingzaken"

[broker]
url = "amqps://{host}:{port}/{VHOST}"
username = "{USER}"
password = "{PASSWORD}"
inbox = "{INBOX}"

[store]
path = "connector.db"

[tls]
{tls}
""",
        encoding="utf-8",
    )
    return path


def tls_section(ca: Path, issued: Issued | None) -> str:
    lines = [f'ca_file = "{ca}"']
    if issued is not None:
        lines += [f'cert_file = "{issued.cert}"', f'key_file = "{issued.key}"']
    return "\n".join(lines)


def check(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("COLUMNS", "400")  # one check per line
    result = runner.invoke(app, ["check", "--config", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def rows(output: str) -> dict[str, str]:
    """`check`'s lines (`pass  name: reason`, `FAIL  name: reason`) by name: "pass reason"."""
    found = {}
    for line in output.splitlines():
        m = re.fullmatch(r"(pass|FAIL)\s+([^:]+): (.*)", line.strip())
        if m:
            found[m[2]] = f"{m[1]} {m[3]}"
    return found


def row(output: str, name: str) -> str:
    return rows(output)[name]


def test_check_passes_with_the_right_client_certificate(
    tls_broker: TlsBroker, topology: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, tls_broker.port, tls=tls_section(tls_broker.ca.cert, tls_broker.client))
    code, output = check(path, monkeypatch)
    assert code == 0, output
    assert "client certificate CN=connector.gm0518.example" in row(output, "tls")
    assert f"connected as {USER}" in row(output, "broker")
    assert "pass" in row(output, "inbox")


async def test_a_connector_publishes_and_consumes_over_mutual_tls(
    tls_broker: TlsBroker, topology: None, tmp_path: Path
) -> None:
    config = load_config(
        write_config(tmp_path, tls_broker.port, tls=tls_section(tls_broker.ca.cert, tls_broker.client))
    )
    async with open_services(config, keystore=False, connector=True) as services:
        connector = services.connector
        assert connector is not None and connector.connected
        sent = await connector.send("nl.leerplicht.ping", {"text": "over TLS"}, [TENANT])
        # What the router would do, done by the hub over its own AMQPS link: take the event
        # from the ingress queue and deliver it to the recipient's inbox.
        async with amqp_channel(tls_broker.hub_settings()) as channel:
            queue = await channel.get_queue(ROUTER_QUEUE, ensure=False)
            message = await queue.get(timeout=10, fail=True)
            assert message is not None
            assert message.user_id == USER  # RabbitMQ checked it against the login
            assert json.loads(message.body)["id"] == sent.id
            await message.ack()
            delivery = await channel.get_exchange(DELIVERY, ensure=False)
            await delivery.publish(
                aio_pika.Message(message.body, content_type=message.content_type), routing_key=TENANT
            )
        connector.inbox_name = INBOX
        async for received in connector.inbox(idle_timeout=10):
            await received.ack()
            assert received.event.id == sent.id
            assert received.event.data == {"text": "over TLS"}
            break
        else:
            pytest.fail("the ping did not come back through the inbox")


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_a_connector_without_the_right_client_certificate_is_refused(
    who: str, tls_broker: TlsBroker, topology: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = None if who == "no certificate" else tls_broker.stranger
    path = write_config(tmp_path, tls_broker.port, tls=tls_section(tls_broker.ca.cert, issued))
    code, output = check(path, monkeypatch)
    assert code == 1, output
    broker = row(output, "broker")
    assert "FAIL" in broker
    assert f"the hub's broker at localhost:{tls_broker.port}" in broker
    if issued is None:
        assert "asks for a client certificate, and none is configured (cert_file)" in broker
    else:
        assert "refused our client certificate" in broker

    async def connect() -> str:
        async with open_services(
            load_config(path), keystore=False, connector=True, connect=False
        ) as services:
            assert services.connector is not None
            with pytest.raises(ConnectorError) as refused:
                await services.connector.connect()
            return refused.value.message

    message = asyncio.run(connect())
    assert f"localhost:{tls_broker.port}" in message and "\n" not in message


def test_a_broker_whose_certificate_does_not_name_the_host_is_refused(
    tls_broker: TlsBroker, topology: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        tmp_path, tls_broker.port, host="127.0.0.2", tls=tls_section(tls_broker.ca.cert, tls_broker.client)
    )
    code, output = check(path, monkeypatch)
    assert code == 1, output
    broker = row(output, "broker")
    assert (
        f"the hub's broker at 127.0.0.2:{tls_broker.port} presented a certificate we do not trust" in broker
    )
    assert "127.0.0.2" in broker and "check the CA bundle (ca_file) and the host name" in broker


def test_a_broker_certificate_from_another_ca_is_refused(
    tls_broker: TlsBroker, topology: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        tmp_path, tls_broker.port, tls=tls_section(tls_broker.other_ca.cert, tls_broker.client)
    )
    code, output = check(path, monkeypatch)
    assert code == 1, output
    broker = row(output, "broker")
    assert (
        f"the hub's broker at localhost:{tls_broker.port} presented a certificate we do not trust (" in broker
    )
    assert "check the CA bundle (ca_file)" in broker


async def test_the_hub_without_a_client_certificate_is_refused(tls_broker: TlsBroker, topology: None) -> None:
    settings = tls_broker.hub_settings(amqp_tls_cert_file=None, amqp_tls_key_file=None)
    with pytest.raises(BrokerAccessRefused) as refused:
        async with amqp_channel(settings):
            pass
    # TLS 1.3: the broker's alert (certificate_required) may arrive, or only its closing.
    message = refused.value.message
    assert message.startswith(f"RabbitMQ at localhost:{tls_broker.port} "), message
    assert "a client certificate, and none is configured (INBEELD_AMQP_TLS_CERT_FILE)" in message


# -- files that cannot be used: named with their problem, before any connection ---------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestCa, Issued]:
    ca = TestCa(tmp_path_factory.mktemp("pki"))
    return ca, ca.client()


def test_unusable_tls_files_are_named_in_check(
    pki: tuple[TestCa, Issued], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, client = pki
    other = TestCa(tmp_path, "Other CA").client("other")
    expired = ca.client("expired", expired=True, folder=tmp_path)
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    missing = tmp_path / "missing.pem"
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate", encoding="utf-8")
    cases = {
        f'ca_file = "{missing}"': f"tls.ca_file: {missing} does not exist",
        f'ca_file = "{not_pem}"': f"tls.ca_file: {not_pem} holds no PEM certificate",
        f'cert_file = "{not_pem}"\nkey_file = "{client.key}"': (
            f"tls.cert_file: {not_pem} holds no PEM certificate"
        ),
        f'cert_file = "{client.cert}"\nkey_file = "{other.key}"': (
            f"tls.key_file: {other.key} is not the key of the certificate in {client.cert}"
        ),
    }
    cases[f'cert_file = "{expired.cert}"\nkey_file = "{expired.key}"'] = (
        f"tls.cert_file: the certificate in {expired.cert} expired on {yesterday}"
    )
    for section, expected in cases.items():
        path = write_config(tmp_path, NO_BROKER, tls=section)
        code, output = check(path, monkeypatch)
        assert code == 1, output
        assert expected in row(output, "tls"), output
        assert "broker" not in rows(output)  # nothing tried with files that cannot be used


def test_run_refuses_unusable_tls_files_before_opening_anything(tmp_path: Path) -> None:
    missing = tmp_path / "pkioverheid.pem"
    path = write_config(tmp_path, NO_BROKER, tls=f'ca_file = "{missing}"')
    result = runner.invoke(app, ["run", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert f"config error: tls.ca_file: {missing} does not exist" in " ".join(result.output.split())
    assert not (tmp_path / "connector.db").exists()  # the store was not even created


def test_an_encrypted_key_needs_its_passphrase(
    tmp_path: Path, pki: tuple[TestCa, Issued], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, _ = pki
    locked = ca.client("locked", passphrase="correct horse")
    section = f'cert_file = "{locked.cert}"\nkey_file = "{locked.key}"\nkey_passphrase_env = "TEST_TLS_PASS"'
    config = load_config(write_config(tmp_path, NO_BROKER, tls=section))
    monkeypatch.setenv("TEST_TLS_PASS", "wrong")
    with pytest.raises(ConfigError, match=r"tls.key_file: cannot load .*locked-key.pem \(wrong passphrase"):
        config.tls.client_context()
    monkeypatch.setenv("TEST_TLS_PASS", "correct horse")
    assert config.tls.client_context().minimum_version >= ssl.TLSVersion.TLSv1_2
    monkeypatch.delenv("TEST_TLS_PASS")
    with pytest.raises(
        ConfigError, match=r"tls\.key_passphrase_env: environment variable TEST_TLS_PASS is not set"
    ):
        config.tls.client_context()


def test_a_certificate_without_its_key_is_a_config_error(tmp_path: Path, pki: tuple[TestCa, Issued]) -> None:
    _, client = pki
    path = write_config(tmp_path, NO_BROKER, tls=f'cert_file = "{client.cert}"')
    with pytest.raises(ConfigError, match=r"tls: give cert_file and key_file together"):
        load_config(path)
