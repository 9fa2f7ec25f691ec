"""A connector's configuration: one TOML file per tenant (see `EXAMPLE`, written by `init`).

Secrets are named by environment variable (`password_env`, `token_env`, `secret_env`,
`passphrase_env`) rather than written in the file; an inline `password`/`token` is allowed for
development. Relative paths are relative to the config file's directory. A bad file raises
`ConfigError` whose message has one line per problem, each naming its field
(`sinks.0.url: ...`); `field` is the first one's.
"""

from __future__ import annotations

import os
import re
import ssl
import tomllib
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas.amqp_addresses import node_addresses
from schemas.envelope import TENANT_CODE_RE, TenantCode, error_path
from schemas.errors import InbeeldError, TooDeep
from schemas.events import ContactPerson
from schemas.fields import Email, Phone, ShortText, Slug
from schemas.nesting import check_toml
from schemas.tls import TlsError, TlsFiles, client_context

__all__ = [
    "EXAMPLE",
    "BrokerConfig",
    "ConfigError",
    "ConnectorConfig",
    "FolderSinkConfig",
    "FolderSourceConfig",
    "HttpSourceConfig",
    "HubConfig",
    "KeystoreConfig",
    "LetterheadConfig",
    "MetricsConfig",
    "NoticesConfig",
    "StdoutSinkConfig",
    "StoreConfig",
    "TemplatesConfig",
    "TlsConfig",
    "WebhookSinkConfig",
    "WorkspaceConfig",
    "example_config",
    "load_config",
]


class ConfigError(InbeeldError):
    reason = "config_error"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env(name: str | None, field: str) -> str | None:
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{field}: environment variable {name} is not set", field=field)
    return value


class BrokerConfig(_Model):
    url: Annotated[
        str,
        Field(
            description="amqp[s]://host:port/vhost, without credentials; a cluster: every node, "
            "amqp[s]://host1:port1,host2:port2,host3:port3/vhost"
        ),
    ]
    username: Annotated[str, Field(min_length=1, max_length=200)]
    password: str | None = None
    password_env: str | None = None
    # The inbox queue the hub named for us (unguessable); None: ask the hub ([hub] token).
    inbox: Annotated[str | None, Field(pattern=r"^inbeeld\.inbox\.[A-Za-z0-9._-]{1,180}$")] = None
    heartbeat: Annotated[int, Field(ge=0, le=600)] = 15
    prefetch: Annotated[int, Field(ge=1, le=1000)] = 32
    publish_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    # Seconds a missing inbox sequence number may still arrive late before it is a gap, which
    # the connector then asks the hub to fill (POST /inbox/resync, with a [hub] token).
    gap_grace: Annotated[float, Field(gt=0, le=3600)] = 10.0

    @field_validator("url")
    @classmethod
    def _amqp(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("must be an amqp:// or amqps:// URL with a host")
        node_addresses(v)  # several nodes of a cluster: host1:port1,host2:port2 (each checked)
        if parts.username or parts.password:
            raise ValueError("put the credentials in username and password_env, not in the URL")
        return v

    def resolved_password(self) -> str:
        if self.password is not None:
            return self.password
        value = _env(self.password_env, "broker.password_env")
        if value is None:
            raise ConfigError("broker.password: give password_env (or password)", field="broker.password")
        return value

    def amqp_url(self) -> str:
        parts = urlsplit(self.url)
        netloc = f"{quote(self.username, safe='')}:{quote(self.resolved_password(), safe='')}@{parts.netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


class HubConfig(_Model):
    url: str
    token: str | None = None
    token_env: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).hostname:
            raise ValueError("must be an http:// or https:// URL")
        return v

    def resolved_token(self) -> str | None:
        return self.token if self.token is not None else _env(self.token_env, "hub.token_env")


class TlsConfig(_Model):
    """TLS of the links to the hub (`amqps://` broker, `https://` API): the CA bundle that
    issued the hub's certificates (e.g. the PKIoverheid roots; absent: the system's CAs) and,
    for mutual TLS, our client certificate and key (PEM; an encrypted key's passphrase is read
    from `key_passphrase_env`). TLS 1.2 at least, host names checked (`schemas.tls`)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_passphrase_env: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together (mutual TLS), or neither")
        return self

    def files(self) -> TlsFiles:
        return TlsFiles(
            self.ca_file,
            self.cert_file,
            self.key_file,
            _env(self.key_passphrase_env, "tls.key_passphrase_env"),
            names=("tls.ca_file", "tls.cert_file", "tls.key_file"),
        )

    def client_context(self) -> ssl.SSLContext:
        """The context of both links; `ConfigError` naming the file and the problem."""
        try:
            return client_context(self.files())
        except TlsError as exc:
            raise ConfigError(exc.message, field=exc.field) from None

    def describe(self) -> str:
        try:
            return self.files().describe()
        except TlsError as exc:
            raise ConfigError(exc.message, field=exc.field) from None


class KeystoreConfig(_Model):
    path: Path
    passphrase_env: str = "INBEELD_KEYSTORE_PASSPHRASE"  # noqa: S105 (a variable name)
    kek_env: str = "INBEELD_KEYSTORE_KEK"
    create: bool = True


class StoreConfig(_Model):
    path: Path


class _SinkBase(_Model):
    name: Annotated[str | None, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] = None
    types: Annotated[list[str], Field(description="event types to deliver; `*` suffix matches a prefix")] = [
        "nl.leerplicht.*"
    ]


class WebhookSinkConfig(_SinkBase):
    kind: Literal["webhook"]
    url: str
    secret: str | None = None
    secret_env: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    retry_days: Annotated[float, Field(gt=0, le=60)] = 7.0
    initial_backoff_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    max_backoff_seconds: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    stuck_after_minutes: Annotated[float, Field(gt=0)] = 60.0
    # Refusals (HTTP 4xx other than 408/429) before an event is parked for the operator.
    park_after: Annotated[int, Field(ge=1, le=100)] = 3

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).hostname:
            raise ValueError("must be an http:// or https:// URL")
        return v

    def resolved_secret(self, field: str) -> bytes:
        if self.secret is not None:
            return self.secret.encode()
        value = _env(self.secret_env, f"{field}.secret_env")
        if value is None:
            raise ConfigError(f"{field}.secret: give secret_env (or secret)", field=f"{field}.secret")
        return value.encode()


class FolderSinkConfig(_SinkBase):
    kind: Literal["folder"]
    path: Path


class StdoutSinkConfig(_SinkBase):
    kind: Literal["stdout"]


SinkConfig = Annotated[WebhookSinkConfig | FolderSinkConfig | StdoutSinkConfig, Field(discriminator="kind")]


class FolderSourceConfig(_Model):
    kind: Literal["folder"]
    path: Path
    poll_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0


class HttpSourceConfig(_Model):
    kind: Literal["http"]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8089
    token_env: str | None = None


SourceConfig = Annotated[FolderSourceConfig | HttpSourceConfig, Field(discriminator="kind")]


class NoticesConfig(_Model):
    """Neighbour notices: who the asker should call when our register knows their pupil."""

    name: ShortText
    department: ShortText | None = None
    phone: Phone | None = None
    email: Email | None = None
    auto_answer: bool = True  # false: record a match for the officer, answer nothing
    check_seconds: Annotated[float, Field(gt=0, le=86400)] = 60.0  # expiry / re-check period

    def contact_person(self) -> ContactPerson:
        return ContactPerson(name=self.name, department=self.department, phone=self.phone, email=self.email)


class LetterheadConfig(_Model):
    """The sender block of letters rendered from templates (`inbeeld-connector letter`)."""

    name: ShortText
    return_address: Annotated[list[ShortText], Field(max_length=6)] = []
    department: ShortText | None = None
    phone: Phone | None = None
    email: Email | None = None
    website: Annotated[str | None, Field(max_length=200)] = None
    visiting_address: Annotated[list[ShortText], Field(max_length=4)] = []
    logo: Path | None = None  # a PNG or SVG (at most 256 KiB), printed 14 mm high


class TemplatesConfig(_Model):
    """Which publishers' template bundles this connector accepts (empty: any the hub sends)."""

    publishers: Annotated[list[TenantCode], Field(max_length=100)] = []

    def accepts(self, publisher: str) -> bool:
        return not self.publishers or publisher in self.publishers


class MetricsConfig(_Model):
    """`run` serves Prometheus metrics at http://host:port/metrics (no token: keep it on a
    local or monitoring network). Absent: not served."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464  # 0: any free port


class TracingConfig(_Model):
    """`run` exports its spans over OTLP/HTTP to this collector. Absent: traces are off (the
    envelope and the processing log still carry trace and span ids)."""

    otlp_endpoint: Annotated[str, Field(pattern=r"^https?://", max_length=300)]


# The flows of schemas.processing_log.FLOWS.
ActivityFlow = Literal["transfer", "notice", "register", "template", "group", "access", "letter"]


class ProcessingActivityConfig(_Model):
    """One entry of the municipality's register of processing activities (verwerkingsregister):
    the processing log names `id`; a pupil's access report shows `name`."""

    id: Annotated[str, Field(pattern=r"^[!-~]{1,200}$", description="the register's id or URI, no spaces")]
    name: ShortText
    legal_basis: ShortText | None = None  # the article it rests on, where its messages name none
    # A stable code for that article (e.g. `lpw-1969-art-18`): with `legal_basis`, the dossier
    # of an offer made in the workspace names it (`legal_basis` of the transfer contract).
    legal_basis_code: Slug | None = None

    @model_validator(mode="after")
    def _code_needs_citation(self) -> ProcessingActivityConfig:
        if self.legal_basis_code is not None and self.legal_basis is None:
            raise ValueError("legal_basis_code needs legal_basis: the article as people read it")
        return self

    def basis(self) -> dict[str, str] | None:
        """The legal basis as a dossier names it ({code, citation}), if both are set."""
        if self.legal_basis is None or self.legal_basis_code is None:
            return None
        return {"code": self.legal_basis_code, "citation": self.legal_basis}


class WorkspaceConfig(_Model):
    """`serve` runs the web workspace at http://host:port/ (local accounts: `user add`). Keep it
    on the municipality's own network: it shows decrypted dossiers. The session cookie is signed
    with the secret in `secret_env` (absent: a new one each start, which logs everyone out)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8090
    secret_env: str | None = None
    idle_minutes: Annotated[int, Field(ge=1, le=720)] = 30
    # Single sign-on through the municipality's reverse proxy: the login name it puts in this
    # header, honoured only on requests straight from one of `trusted_proxies`.
    trusted_header: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9-]{1,64}$")] = None
    trusted_proxies: list[IPvAnyNetwork] = [IPv4Network("127.0.0.1/32"), IPv6Network("::1/128")]
    # The NL Design System tokens the pages wear (webui.assets.THEMES): Utrecht's, or a
    # municipality's own where its tokens are bundled.
    theme: Literal["utrecht", "denhaag"] = "utrecht"

    @field_validator("theme", mode="before")
    @classmethod
    def _theme(cls, v: object) -> object:
        if v == "rotterdam":
            raise ValueError(
                "Rotterdam's design tokens are not bundled (their licence reserves the house style "
                "to Gemeente Rotterdam); use 'utrecht' or 'denhaag'"
            )
        return v


class ConnectorConfig(_Model):
    tenant: Annotated[str, Field(pattern=TENANT_CODE_RE, description="CBS code (GM0518) or tenant code")]

    @field_validator("tenant", mode="before")
    @classmethod
    def _tenant(cls, v: object) -> object:
        if isinstance(v, str) and not re.match(TENANT_CODE_RE, v):
            raise ValueError("must be a CBS code such as GM0518, or a lower-case tenant code")
        return v

    system: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")] = "connector"
    oin: Annotated[str | None, Field(pattern=r"^\d{20}$")] = None
    receipts: bool = False
    broker: BrokerConfig
    hub: HubConfig | None = None
    keystore: KeystoreConfig | None = None
    store: StoreConfig
    sinks: list[SinkConfig] = []
    sources: list[SourceConfig] = []
    notices: NoticesConfig | None = None
    letterhead: LetterheadConfig | None = None
    templates: TemplatesConfig = TemplatesConfig()
    metrics: MetricsConfig | None = None
    tls: TlsConfig = TlsConfig()
    tracing: TracingConfig | None = None
    workspace: WorkspaceConfig = WorkspaceConfig()
    processing_activities: dict[ActivityFlow, ProcessingActivityConfig] = {}

    def activity_ids(self) -> dict[str, str]:
        """Flow -> the municipality's id of its processing activity, for the processing log."""
        return {flow: a.id for flow, a in self.processing_activities.items()}

    def sink_names(self) -> list[str]:
        return [s.name or f"{s.kind}-{i}" for i, s in enumerate(self.sinks)]


def _resolve_paths(raw: dict[str, object], base: Path) -> None:
    def fix(section: object, key: str = "path") -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            p = Path(section[key]).expanduser()
            section[key] = str(p if p.is_absolute() else base / p)

    fix(raw.get("letterhead"), "logo")
    fix(raw.get("keystore"))
    fix(raw.get("store"))
    for key in ("ca_file", "cert_file", "key_file"):
        fix(raw.get("tls"), key)
    for key in ("sinks", "sources"):
        items = raw.get(key)
        if isinstance(items, list):
            for item in items:
                fix(item)


def parse_config(raw: dict[str, object], base: Path) -> ConnectorConfig:
    _resolve_paths(raw, base)
    try:
        config = ConnectorConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_input=False, include_url=False):
            # Drop the union tag pydantic puts in the path (`sinks.0.webhook.url` -> `sinks.0.url`).
            loc = [
                p for i, p in enumerate(err["loc"]) if not (i == 2 and err["loc"][0] in ("sinks", "sources"))
            ]
            field = error_path(tuple(loc)) or "config"
            problems.append((field, err["msg"].removeprefix("Value error, ")))
        # Every problem, one line each: fixing them one run at a time is slow and discouraging.
        message = "\n".join(f"{field}: {why}" for field, why in problems)
        raise ConfigError(message, field=problems[0][0]) from None
    names = config.sink_names()
    if len(set(names)) != len(names):
        raise ConfigError("sinks: two sinks have the same name", field="sinks")
    return config


def load_config(path: str | os.PathLike[str]) -> ConnectorConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        check_toml(text, what=str(path))  # tomllib recurses per level of nesting
        raw = tomllib.loads(text)
    except TooDeep as exc:
        raise ConfigError(exc.message) from None
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(raw, path.resolve().parent)


_EXAMPLE_TEMPLATE = """\
# Inbeeld connector configuration (one file per tenant).
# Check it with:   inbeeld-connector check --config connector.toml
# Run it with:     inbeeld-connector run --config connector.toml
# Secrets are read from the environment variables named here, never written in this file.

tenant = "@TENANT@"            # your CBS code (or tenant code) as registered on the hub
system = "leerlingzaken"     # your system; events carry urn:nld:cbs:@TENANT@:systeem:leerlingzaken
# oin = "00000001234567890000"   # your OIN, if you have one (source becomes urn:nld:oin:...)
receipts = false             # send nl.leerplicht.receipt to the sender after processing each event

[broker]                     # the hub's RabbitMQ; credentials from the hub operator
url = "amqps://hub.example.nl:5671/inbeeld"
# a cluster: every node, comma-separated; the connector uses the first that answers and
# moves to another when its node goes away:
# url = "amqps://rmq1.hub.example.nl:5671,rmq2.hub.example.nl:5671,rmq3.hub.example.nl:5671/inbeeld"
username = "inbeeld.@TENANT@"
password_env = "INBEELD_BROKER_PASSWORD"
# inbox = "inbeeld.inbox.@TENANT@.<random>"  # your inbox queue, printed by `inbeeld tenant provision`;
#                                     # omit it to ask the hub ([hub] below, with a token)
heartbeat = 15               # seconds; detects a dead network path
prefetch = 32
# gap_grace = 10             # seconds a missing inbox message may come late; then the
#                            # connector asks the hub to send it again ([hub] token needed)

[hub]                        # the hub's HTTP API (key directory); optional
url = "https://hub.example.nl"
token_env = "INBEELD_HUB_TOKEN"

# [tls]                      # TLS of the amqps:// and https:// links above (TLS 1.2+, host names checked)
# ca_file = "/etc/inbeeld/pkioverheid-roots.pem"   # CAs of the hub's certificates; omit: the system's
# cert_file = "/etc/inbeeld/client.pem"            # mutual TLS: your (PKIoverheid) certificate chain
# key_file = "/etc/inbeeld/client-key.pem"         # and its key
# key_passphrase_env = "INBEELD_TLS_KEY_PASSPHRASE"  # if the key is encrypted

[keystore]                   # your private keys; created on first run if absent
path = "keystore.json"
passphrase_env = "INBEELD_KEYSTORE_PASSPHRASE"   # or set the KEK in kek_env
kek_env = "INBEELD_KEYSTORE_KEK"

[store]                      # local SQLite: received events, the outbox, templates, pupil register
path = "connector.db"

[[sinks]]                    # POST each event to your case system, signed (HMAC-SHA256)
kind = "webhook"
name = "zaaksysteem"
url = "https://zaaksysteem.intern.example/inbeeld"
secret_env = "INBEELD_WEBHOOK_SECRET"
retry_days = 7               # keep retrying (exponential backoff) this long
initial_backoff_seconds = 5
max_backoff_seconds = 3600
stuck_after_minutes = 60     # log `sink.stuck` for the operator after this long
park_after = 3               # park an event refused (4xx, not 408/429) this often; the rest flows on
                             # (see: inbeeld-connector outbox list|retry|drop)
# types = ["nl.leerplicht.transfer.*"]

# Also write each event to a file, encrypted at rest under the keystore (needs [keystore]):
# read one with `inbeeld-connector sink show FILE`; after `shred` they cannot be read.
[[sinks]]
kind = "folder"
path = "received"

# [[sinks]]
# kind = "stdout"

[[sources]]                  # drop {type, recipients, data, subject?} JSON files here to send them
kind = "folder"
path = "outgoing"            # sent files move to outgoing/sent, bad ones to outgoing/failed
poll_seconds = 2

# [[sources]]                # or POST the same JSON to http://127.0.0.1:8089/events
# kind = "http"
# host = "127.0.0.1"
# port = 8089
# token_env = "INBEELD_SOURCE_TOKEN"

[notices]                    # neighbour notices (needs [keystore] and [hub]); omit: never answer
name = "Team Leerplicht"     # the contact person a neighbour's officer calls when we know the pupil
department = "Leerlingzaken"
@NOTICE_PHONE@
email = "leerplicht@example.nl"
auto_answer = true           # answer pupil_missing from the local register (false: record the match only)
check_seconds = 60           # how often notices past their deadline are expired

[letterhead]                 # the sender block of letters (`inbeeld-connector letter render`)
name = "@NAME@"
department = "Leerlingzaken"
@LETTER_PHONE@
email = "leerplicht@example.nl"
# return_address = ["Postbus 12345", "@RETURN_TOWN@"]   # up to 6 lines
# website = "https://www.example.nl"
# visiting_address = ["@VISIT_STREET@", "@VISIT_TOWN@"]    # printed beside the contact details
# logo = "/etc/inbeeld/logo.svg"                          # PNG or SVG, printed 14 mm high

[templates]                  # letter templates arrive through `run`, from the publishers you follow
# publishers = ["ingrado"]   # accept bundles only from these (default: any the hub delivers)

# [metrics]                  # `run` serves Prometheus metrics at http://host:port/metrics; omit: off
# host = "127.0.0.1"         # no token is asked: listen on a local or monitoring network only
# port = 9464

# [tracing]                  # `run` exports its spans (OTLP over HTTP); omit: off
# otlp_endpoint = "http://127.0.0.1:4318"

# Your register of processing activities (verwerkingsregister): the activity each flow serves.
# The processing log names these ids; a pupil's access report (AVG article 15) shows the names.
[processing_activities.transfer]
id = "@TENANT@-VA-leerplicht-overdracht"
name = "Overdracht leerplichtdossier bij verhuizing"
legal_basis = "Leerplichtwet 1969, artikel 18"   # an offer from the workspace names it in its
legal_basis_code = "lpw-1969-art-18"             # dossier (both needed); check it is yours
[processing_activities.notice]
id = "@TENANT@-VA-leerplicht-buren"
name = "Buren vragen naar een vermiste leerling"
# legal_basis = "..."        # the article it rests on, shown where its messages name none
[processing_activities.register]
id = "@TENANT@-VA-leerplicht-register"
name = "Leerlingenregister"
[processing_activities.access]
id = "@TENANT@-VA-avg-inzage"
name = "Inzageverzoeken (AVG artikel 15)"
[processing_activities.letter]  # letters rendered about a pupil (`letter render --bsn-stdin`)
id = "@TENANT@-VA-leerplicht-brieven"
name = "Brieven aan leerlingen en ouders"
# legal_basis = "..."

# [workspace]                # `serve`: the officers' web workspace (accounts: `user add`)
# host = "127.0.0.1"         # it shows decrypted dossiers: the municipality's own network only
# port = 8090
# secret_env = "INBEELD_WORKSPACE_SECRET"   # signs the session cookie (absent: new at each start)
# idle_minutes = 30
# theme = "utrecht"           # NL Design System tokens: "utrecht", or "denhaag" (The Hague's house style)
"""
# What `init` writes without --tenant: Den Haag's, as an example.
_DEN_HAAG = {
    "@TENANT@": "GM0518",
    "@NAME@": "Gemeente Den Haag",
    "@NOTICE_PHONE@": 'phone = "070 353 3000"',
    "@LETTER_PHONE@": 'phone = "14 070"',
    "@RETURN_TOWN@": "2500 AA Den Haag",
    "@VISIT_STREET@": "Spui 70",
    "@VISIT_TOWN@": "2511 BT Den Haag",
}


def example_config(tenant: str | None = None, name: str | None = None) -> str:
    """The commented configuration `init` writes: for `tenant` (its code everywhere, `name` on
    its letters, contact details left for it to fill in), or Den Haag's as an example."""
    if tenant is None:
        values = dict(_DEN_HAAG)
    else:
        values = {
            "@TENANT@": tenant,
            "@NAME@": name or (f"Gemeente {tenant}" if tenant.startswith("GM") else tenant),
            "@NOTICE_PHONE@": '# phone = "..."            # the number a neighbour\'s officer calls',
            "@LETTER_PHONE@": '# phone = "..."            # printed on letters',
            "@RETURN_TOWN@": "1234 AB Plaats",
            "@VISIT_STREET@": "Straat 1",
            "@VISIT_TOWN@": "1234 AB Plaats",
        }
    text = _EXAMPLE_TEMPLATE
    for marker, value in values.items():
        text = text.replace(marker, value.replace('"', '\\"') if marker == "@NAME@" else value)
    return text


EXAMPLE = example_config()
