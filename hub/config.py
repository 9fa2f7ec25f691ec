"""The hub's one settings object. Every value comes from an `INBEELD_*` environment variable."""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.amqp_addresses import node_addresses
from schemas.tls import TlsFiles, client_context, server_context


class Settings(BaseSettings):
    # Settings hold passwords (URLs, API passwords): an invalid one is never repeated in an error.
    model_config = SettingsConfigDict(env_prefix="INBEELD_", extra="ignore", hide_input_in_errors=True)

    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        description="RabbitMQ server the hub uses (its own admin user); the vhost comes from INBEELD_VHOST. "
        "A cluster: every node, comma-separated, amqp://user:password@host1:5672,host2:5672,host3:5672/ "
        "(connections go to the first that answers and move to another when their node goes away).",
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./inbeeld.db",
        description="SQLAlchemy async URL: SQLite (embedded default) or postgresql+asyncpg://...",
    )
    rabbitmq_api_url: str = Field(
        "http://127.0.0.1:15672",
        description="RabbitMQ management API, used to provision tenants. A cluster: several nodes' "
        "APIs, comma-separated, http://host1:15672,http://host2:15672 (any node answers for the "
        "cluster; a call moves to the next when its node cannot be reached).",
    )
    rabbitmq_api_user: str | None = Field(
        None, description="Management API user; defaults to the user in INBEELD_AMQP_URL."
    )
    rabbitmq_api_password: str | None = Field(
        None, description="Management API password; defaults to the one in INBEELD_AMQP_URL."
    )
    vhost: str = Field("inbeeld", description="RabbitMQ virtual host of this deployment.")
    log_format: Literal["auto", "console", "json"] = Field(
        "auto", description="console on a terminal, JSON lines otherwise (auto), or forced."
    )
    log_level: str = Field("INFO", description="Minimum log level.")
    api_host: str = Field("127.0.0.1", description="Address the HTTP API listens on.")
    api_port: int = Field(8080, description="Port of the HTTP API.")
    delivery_limit: int = Field(
        5, description="Redeliveries of a message before it is dead-lettered (x-delivery-limit)."
    )
    inbox_max_length: int = Field(
        100_000, description="Per-tenant inbox length limit; beyond it the sender is refused."
    )
    tenant_max_connections: int = Field(
        16,
        ge=1,
        description="Broker connections one tenant may hold open at once (RabbitMQ user limit).",
    )
    tenant_max_channels: int = Field(
        128, ge=1, description="Broker channels one tenant may hold open, over all its connections."
    )
    hub_source: str = Field(
        "urn:nld:cbs:inbeeld:systeem:hub",
        description="CloudEvents `source` of events the hub itself sends (use the operator's OIN).",
    )
    sweep_interval: float = Field(30.0, description="Seconds between sweeps for due reminders and expiries.")
    outbox_grace: float = Field(
        10.0,
        ge=0,
        description="Seconds a hub event's copy may wait in the outbox for its writer to publish it "
        "before a router's sweep does (after a broker failure).",
    )
    retention_days: float = Field(
        30.0,
        gt=0,
        description="Days the hub keeps each delivered copy (ciphertext only) so a tenant can ask "
        "for its inbox again after an outage (POST /inbox/resync); a router's sweep deletes older ones.",
    )
    publish_timeout: float = Field(10.0, description="Seconds to wait for a publisher confirm.")
    transfer_deadline_days: int = Field(
        14, ge=1, description="Days a receiver has to answer a transfer offer before it expires."
    )
    transfer_reminder_days: int = Field(
        3, ge=0, description="Remind the receiver this many days before the deadline (0: no reminder)."
    )
    notice_ttl_days: int = Field(
        28,
        ge=1,
        description="Longest a neighbour notice may stay open: a deadline further ahead is refused.",
    )
    rate_limit: float = Field(
        1000.0,
        ge=0,
        description="Events per second one tenant may publish, sustained (token bucket in each "
        "router; 0: no limit). Beyond it the sender gets `hub.rejected` `rate_limited`.",
    )
    rate_burst: int = Field(
        10000, ge=1, description="Events one tenant may publish at once above `INBEELD_RATE_LIMIT`."
    )

    console_secret: str | None = Field(
        None,
        min_length=32,
        description="Key that signs the operator console's session cookies. Unset: a random key "
        "per process (sessions end when the hub restarts; give every API replica the same key).",
    )
    router_metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port on which a router process serves its Prometheus metrics (0: any free "
        "port). Unset: not served (the API's /metrics shows those of a router in its own process).",
    )
    router_metrics_host: str = Field("127.0.0.1", description="Address the router's metrics port listens on.")
    metrics_token: str | None = Field(
        None,
        min_length=16,
        description="Bearer token a scraper must present at the API's /metrics. Unset: /metrics "
        "is open (it shows counts per tenant and reason, no personal data); keep it off the "
        "public network then.",
    )
    console_idle_minutes: int = Field(
        30, ge=1, le=24 * 60, description="The console logs an operator out after this long idle."
    )
    otlp_endpoint: str | None = Field(
        None,
        pattern=r"^https?://",
        description="OpenTelemetry collector (OTLP over HTTP, e.g. http://127.0.0.1:4318) to which "
        "the router and the API export their spans. Unset: traces are off (ids only, nothing recorded).",
    )

    # TLS (schemas.tls: TLS 1.2+, NCSC "good" cipher suites). docs/tls.md
    amqp_tls_ca_file: Path | None = Field(
        None,
        description="CA bundle that issued the broker's certificate (amqps://); unset: the system's CAs.",
    )
    amqp_tls_cert_file: Path | None = Field(
        None,
        description="The hub's client certificate (PEM chain) for a broker that asks for one (mutual TLS).",
    )
    amqp_tls_key_file: Path | None = Field(None, description="Key of INBEELD_AMQP_TLS_CERT_FILE (PEM).")
    amqp_tls_key_password: str | None = Field(
        None, description="Passphrase of an encrypted INBEELD_AMQP_TLS_KEY_FILE."
    )
    api_tls_cert_file: Path | None = Field(
        None, description="Serve the API over HTTPS with this certificate (PEM chain); unset: plain HTTP."
    )
    api_tls_key_file: Path | None = Field(None, description="Key of INBEELD_API_TLS_CERT_FILE (PEM).")
    api_tls_key_password: str | None = Field(
        None, description="Passphrase of an encrypted INBEELD_API_TLS_KEY_FILE."
    )
    api_tls_client_ca_file: Path | None = Field(
        None, description="CA bundle that issues the clients' certificates (e.g. PKIoverheid roots)."
    )
    api_tls_client_cert: Literal["none", "optional", "required"] = Field(
        "none", description="Ask API clients for a certificate issued by INBEELD_API_TLS_CLIENT_CA_FILE."
    )

    @field_validator("amqp_url")
    @classmethod
    def _amqp_nodes(cls, v: str) -> str:
        """One node or a cluster's: amqp[s]://user:password@host1:port1,host2:port2/ (see
        schemas.amqp_addresses); a malformed list is named here, not deep in the AMQP client."""
        node_addresses(v)
        return v

    @field_validator("rabbitmq_api_url")
    @classmethod
    def _api_nodes(cls, v: str) -> str:
        entries = [e.strip() for e in v.split(",")]
        for i, entry in enumerate(entries, 1):
            parts = urlsplit(entry)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                shown = repr(_hide_password(entry))
                where = f"address {i} ({shown})" if len(entries) > 1 else shown
                raise ValueError(f"{where} is not an http(s)://HOST:PORT address of a management API")
        return v

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, v: str) -> str:
        """The store is asynchronous: a URL without its async driver would fail deep inside
        SQLAlchemy with a traceback. Name the URL that works instead."""
        scheme, sep, rest = v.partition("://")
        if scheme in ("sqlite+aiosqlite", "postgresql+asyncpg"):
            return v
        if sep and scheme.split("+")[0] in ("postgresql", "postgres"):
            good = "postgresql+asyncpg://" + rest
        elif sep and scheme.split("+")[0] == "sqlite":
            good = "sqlite+aiosqlite://" + rest
        else:
            raise ValueError(
                "must be a sqlite+aiosqlite:///PATH or a postgresql+asyncpg://USER@HOST:PORT/NAME URL"
            )
        shown = _hide_password(good)
        raise ValueError(f"the hub needs the asynchronous driver: use {shown}")

    # -- alerts (hub.alerts; evaluated by the API process, `inbeeld serve`) --------------------
    alert_offline_hours: float = Field(
        4.0,
        gt=0,
        description="Raise `inbox_offline` when a tenant's inbox has had no consumer (no connector "
        "reading) for this many hours (fractions allowed).",
    )
    alert_backlog_hours: float = Field(
        24.0,
        gt=0,
        description="Raise `inbox_backlog` when a tenant's oldest inbox message has waited this many "
        "hours (the inbox was never empty and nothing was taken from it for that long).",
    )
    alert_interval: float = Field(
        60.0, ge=0, description="Seconds between evaluations of the alert conditions (0: never)."
    )
    alert_webhook_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Operator webhook: each alert raised and cleared is POSTed here, signed like the "
        "connector's webhooks. Unset: alerts are shown in the console and sent to the tenant only.",
    )
    alert_webhook_secret: str | None = Field(
        None,
        min_length=32,
        description="Shared secret (32+ characters) of the HMAC-SHA256 signature of the operator "
        "webhook's posts; required with INBEELD_ALERT_WEBHOOK_URL.",
    )

    @model_validator(mode="after")
    def _alert_webhook_signed(self) -> Settings:
        if self.alert_webhook_url and not self.alert_webhook_secret:
            raise ValueError("INBEELD_ALERT_WEBHOOK_URL needs INBEELD_ALERT_WEBHOOK_SECRET (32+ characters)")
        return self

    @model_validator(mode="after")
    def _reminder_before_deadline(self) -> Settings:
        if self.transfer_reminder_days >= self.transfer_deadline_days:
            raise ValueError(
                "INBEELD_TRANSFER_REMINDER_DAYS must be smaller than INBEELD_TRANSFER_DEADLINE_DAYS"
            )
        return self

    def amqp_ssl_context(self) -> ssl.SSLContext | None:
        """The context of the hub's broker connections for an amqps:// URL (else None);
        `TlsError` naming the variable and file that cannot be used."""
        if urlsplit(self.amqp_url).scheme != "amqps":
            return None
        names = ("INBEELD_AMQP_TLS_CA_FILE", "INBEELD_AMQP_TLS_CERT_FILE", "INBEELD_AMQP_TLS_KEY_FILE")
        return client_context(
            TlsFiles(
                self.amqp_tls_ca_file,
                self.amqp_tls_cert_file,
                self.amqp_tls_key_file,
                self.amqp_tls_key_password,
                names=names,
            )
        )

    def api_ssl_context(self) -> ssl.SSLContext | None:
        """The API's server context when INBEELD_API_TLS_CERT_FILE is set (else None)."""
        if self.api_tls_cert_file is None and self.api_tls_client_cert == "none":
            return None
        names = ("INBEELD_API_TLS_CLIENT_CA_FILE", "INBEELD_API_TLS_CERT_FILE", "INBEELD_API_TLS_KEY_FILE")
        files = TlsFiles(
            self.api_tls_client_ca_file,
            self.api_tls_cert_file,
            self.api_tls_key_file,
            self.api_tls_key_password,
            names=names,
        )
        return server_context(files, client_certs=self.api_tls_client_cert)

    def amqp_url_for(
        self, vhost: str | None = None, user: str | None = None, password: str | None = None
    ) -> str:
        """The AMQP URL for `vhost` (default: ours), optionally as another user."""
        parts = urlsplit(self.amqp_url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        cred_user = user if user is not None else (parts.username or "guest")
        cred_pass = password if password is not None else (parts.password or "guest")
        netloc = f"{quote(cred_user, safe='')}:{quote(cred_pass, safe='')}@{netloc}"
        return urlunsplit((parts.scheme, netloc, "/" + quote(vhost or self.vhost, safe=""), "", ""))

    @property
    def amqp_user(self) -> str:
        """The hub's own broker user (the only one that may stamp it as `user_id`)."""
        return urlsplit(self.amqp_url).username or "guest"

    @property
    def api_credentials(self) -> tuple[str, str]:
        parts = urlsplit(self.amqp_url)
        return (
            self.rabbitmq_api_user or parts.username or "guest",
            self.rabbitmq_api_password or parts.password or "guest",
        )

    def redacted(self, url: str) -> str:
        """A URL with its password hidden, for messages to the operator."""
        return _hide_password(url)


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@lru_cache
def get_settings() -> Settings:
    return Settings()
