"""`inbeeld-connector check`: validate the configuration, try the broker, the hub and the
keys, and compare the configuration with what the hub says of the tenant (`GET
/tenants/me`). One line per check, `pass` or `FAIL` with the reason; exit 1 on any FAIL."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import typer
from rich.console import Console

from connectors.cli.lifecycle import ConfigOpt, load_or_exit

if TYPE_CHECKING:
    from connectors.client import Connector
    from connectors.config import ConnectorConfig

__all__ = ["check"]

console = Console()
err = Console(stderr=True)

Result = tuple[str, bool, str]  # (what, passed, one line saying why)


async def _checks(cfg: ConnectorConfig) -> list[Result]:
    from connectors.client import Connector, ConnectorError
    from connectors.config import ConfigError, WebhookSinkConfig
    from connectors.services import open_keystore
    from schemas.errors import InbeeldError

    results: list[Result] = [("config", True, f"tenant {cfg.tenant}, system {cfg.system}")]
    try:
        tls = cfg.tls.client_context()
        results.append(("tls", True, cfg.tls.describe()))
    except ConfigError as exc:
        results.append(("tls", False, exc.message))
        return results  # no link can be tried without its certificates
    results += _example_values(cfg)
    results.append(_activities_check(cfg))
    if cfg.notices is not None and (cfg.hub is None or cfg.keystore is None):
        results.append(
            ("notices", False, "[notices] needs [hub] and [keystore] (the key directory and the group keys)")
        )
    me = await _hub_checks(cfg, results) if cfg.hub is not None else None
    results += _identity_checks(cfg, me)
    try:
        url = cfg.broker.amqp_url()
    except ConfigError as exc:
        results.append(("broker", False, exc.message))
    else:
        connector = Connector(
            cfg.tenant,
            url,
            system=cfg.system,
            oin=cfg.oin,
            connect_timeout=5,
            ssl_context=tls,
            connection_name=f"inbeeld-connector {cfg.tenant} check",
        )
        try:
            await connector.connect()
            results.append(("broker", True, f"connected as {cfg.broker.username}"))
            results.append(await _inbox_check(cfg, connector))
        except ConnectorError as exc:
            results.append(("broker", False, exc.message))
        finally:
            await connector.close()
    if cfg.keystore is not None:
        if cfg.keystore.path.exists():
            try:
                keystore = open_keystore(cfg)
                results.append(("keystore", True, f"unlocked {cfg.keystore.path}"))
            except InbeeldError as exc:
                results.append(("keystore", False, exc.message))
            else:
                if keystore is not None and cfg.hub is not None:
                    results.append(await _keys_check(cfg, keystore.public_jwks()))
        elif os.environ.get(cfg.keystore.passphrase_env) or os.environ.get(cfg.keystore.kek_env):
            results.append(("keystore", True, f"{cfg.keystore.path} will be created on first run"))
        else:
            results.append(
                (
                    "keystore",
                    False,
                    f"{cfg.keystore.path} does not exist and neither {cfg.keystore.passphrase_env} nor "
                    f"{cfg.keystore.kek_env} is set: `run` cannot create it",
                )
            )
    parent = cfg.store.path.parent
    writable = parent.exists() and parent.is_dir()
    results.append(
        ("store", writable, str(cfg.store.path) if writable else f"directory {parent} does not exist")
    )
    for i, (name, sink) in enumerate(zip(cfg.sink_names(), cfg.sinks, strict=True)):
        if isinstance(sink, WebhookSinkConfig):
            try:
                sink.resolved_secret(f"sinks.{i}")
                results.append((f"sink {name}", True, sink.url))
            except ConfigError as exc:
                results.append((f"sink {name}", False, exc.message))
    return results


def _activities_check(cfg: ConnectorConfig) -> Result:
    """Which flows the register of processing activities maps (the config's model checked
    each entry); a flow left out keeps Inbeeld's URN in the processing log."""
    mapped = cfg.processing_activities
    if not mapped:
        return ("processing activities", True, "none configured: the processing log names Inbeeld's URNs")
    unmapped = [f for f in ("transfer", "notice", "register", "access", "letter") if f not in mapped]
    said = ", ".join(f"{flow} -> {a.id}" for flow, a in mapped.items())
    return (
        "processing activities",
        True,
        said + (f"; not in your register: {', '.join(unmapped)}" if unmapped else ""),
    )


_EXAMPLE_VALUE = re.compile(r"(?:^|[@./])example(?:\.(?:nl|com|org|net))?(?:$|[/:])", re.IGNORECASE)


def _example_values(cfg: ConnectorConfig) -> list[Result]:
    """Every value still at one of `init`'s examples (hub.example.nl, leerplicht@example.nl)."""
    found: list[Result] = []

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}" if where else str(key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{where}.{i}")
        elif isinstance(value, str):
            if "://" in value:
                host = urlsplit(value).hostname
            elif "@" in value:
                host = value.rpartition("@")[2]
            else:
                return
            if host and _EXAMPLE_VALUE.search(host):
                found.append((where, False, f"still the example value {value}: put your own in"))

    walk(cfg.model_dump(mode="json", exclude_none=True), "")
    return found


async def _hub_checks(cfg: ConnectorConfig, results: list[Result]) -> dict[str, Any] | None:
    """The hub answers, and who it says our token belongs to (`GET /tenants/me`)."""
    from connectors.config import ConfigError
    from connectors.hub_api import HubApi, HubApiError

    assert cfg.hub is not None
    try:
        async with HubApi(cfg.hub.url, None, timeout=5, ssl_context=cfg.tls.client_context()) as api:
            status = await api.health()
        results.append(("hub", status < 500, f"{cfg.hub.url} answered HTTP {status}"))
    except HubApiError as exc:
        results.append(("hub", False, exc.message))
        return None
    try:
        token = cfg.hub.resolved_token()
    except ConfigError as exc:
        results.append(("hub token", False, exc.message))
        return None
    if token is None:
        results.append(
            (
                "hub token",
                False,
                "none set (token_env): the connector cannot register its keys or ask for its inbox",
            )
        )
        return None
    try:
        async with HubApi(cfg.hub.url, token, timeout=5, ssl_context=cfg.tls.client_context()) as api:
            me = await api.get("/tenants/me")
    except HubApiError as exc:
        if exc.status == 401:
            results.append(
                ("hub token", False, "the hub does not accept this token (wrong, revoked, or another hub's)")
            )
        else:
            results.append(("hub token", False, exc.message))
        return None
    if not isinstance(me, dict) or me.get("scope") == "operator":
        results.append(
            (
                "hub token",
                False,
                f"an operator token: give the connector {cfg.tenant}'s own "
                f"(`inbeeld token create --tenant {cfg.tenant}`)",
            )
        )
        return None
    if me.get("code") != cfg.tenant:
        results.append(("hub token", False, f"this token is {me.get('code')}'s, not {cfg.tenant}'s"))
        return None
    results.append(("hub token", True, f"{cfg.tenant} ({me.get('name')})"))
    return me


def _identity_checks(cfg: ConnectorConfig, me: dict[str, Any] | None) -> list[Result]:
    """`tenant`, `oin`, the broker user and the inbox against what the hub says of the tenant
    (`me`, None when it could not tell: then the broker user against the hub's naming rule)."""
    user = cfg.broker.username
    if me is None:
        vhost = unquote(urlsplit(cfg.broker.url).path.lstrip("/")) or "/"
        if user != f"{vhost}.{cfg.tenant}":
            return [
                (
                    "tenant",
                    False,
                    f"{cfg.tenant} does not match the broker user {user} "
                    f"(the hub names a tenant's user <vhost>.<tenant>: {vhost}.{cfg.tenant})",
                )
            ]
        return []
    found: list[Result] = []
    if not me.get("active", True):
        found.append(("tenant", False, f"the hub has suspended {cfg.tenant}"))
    theirs = me.get("broker_user")
    if isinstance(theirs, str) and theirs != user:
        found.append(("broker.username", False, f"{user} is not {cfg.tenant}'s broker user ({theirs})"))
    oin = me.get("oin")
    if oin and cfg.oin != oin:
        found.append(
            (
                "oin",
                False,
                f'the hub registered {cfg.tenant} with OIN {oin}: set oin = "{oin}" '
                "(it refuses events whose source does not carry it)",
            )
        )
    elif not oin and cfg.oin:
        found.append(
            ("oin", False, f"the hub has no OIN for {cfg.tenant}: remove oin, or ask the hub operator")
        )
    inbox = me.get("inbox")
    if cfg.broker.inbox is not None and isinstance(inbox, str) and inbox != cfg.broker.inbox:
        found.append(
            (
                "broker.inbox",
                False,
                f"not the inbox the hub reports for {cfg.tenant}: remove it to ask the hub",
            )
        )
    return found


async def _keys_check(cfg: ConnectorConfig, jwks: dict[str, Any]) -> Result:
    """Would the hub take this keystore's keys for `tenant`? (A copied configuration with a
    mistyped tenant or another keystore is refused at `run`: say so before.)"""
    from connectors.config import ConfigError
    from connectors.directory import Directory
    from connectors.hub_api import HubApi
    from schemas.errors import InbeeldError, NotFound

    assert cfg.hub is not None
    try:
        token = cfg.hub.resolved_token()
    except ConfigError:
        return ("keys", False, "no hub token to ask the hub's key directory")
    if token is None:
        return ("keys", False, "no hub token to ask the hub's key directory")
    try:
        async with HubApi(cfg.hub.url, token, timeout=5, ssl_context=cfg.tls.client_context()) as api:
            published = await Directory(api).keys(cfg.tenant)
    except NotFound:
        return ("keys", False, f"the hub knows no tenant {cfg.tenant}: check `tenant` in the configuration")
    except InbeeldError as exc:
        return ("keys", False, exc.message)
    ours = {k["kid"] for k in jwks["keys"]}
    theirs = {k["kid"] for k in published}
    if not theirs:
        return ("keys", True, f"none registered for {cfg.tenant} yet: `run` registers this keystore's")
    if ours == theirs:
        return ("keys", True, f"this keystore's keys are the ones the hub publishes for {cfg.tenant}")
    if {k["kid"] for k in published if k.get("use") == "sig"} & ours:
        return ("keys", True, f"`run` registers a rotation of {cfg.tenant}'s keys, signed by a current key")
    return (
        "keys",
        False,
        f"the hub publishes other keys for {cfg.tenant}: `run` would be refused (key_replacement_refused). "
        "Is this the tenant's own keystore? After a lost keystore the hub operator replaces the keys.",
    )


async def _inbox_check(cfg: ConnectorConfig, connector: Connector) -> Result:
    """Our inbox exists and we may read it; and whether another instance is consuming it (one
    active consumer per inbox: this one would stand by until that one stops)."""
    from connectors import inbox_name
    from schemas.errors import InbeeldError

    try:
        connector.inbox_name = await inbox_name.resolve(cfg)
        status = await connector.inbox_status()
    except InbeeldError as exc:
        return ("inbox", False, exc.message)
    where = "named in [broker] inbox" if cfg.broker.inbox else "as the hub reports it"
    if status.consumers:
        return (
            "inbox",
            True,
            f"{status.messages} waiting; another instance of {cfg.tenant} is consuming it now, "
            "so a `run` of this config would stand by until that one stops",
        )
    return ("inbox", True, f"{status.messages} waiting, no connector consuming ({where})")


def check(config: ConfigOpt) -> None:
    """Validate the configuration; try the broker, the hub and the keys; compare what the hub
    says of the tenant with the configuration. One line per check; exit 1 on any FAIL."""
    import asyncio

    cfg = load_or_exit(config)
    results = asyncio.run(_checks(cfg))
    for name, ok, detail in results:
        console.print(
            f"{'pass' if ok else 'FAIL'}  {name}: {detail}", markup=False, highlight=False, soft_wrap=True
        )
    failed = sum(not ok for _, ok, _ in results)
    if failed:
        err.print(f"{config}: {failed} problem{'s' if failed > 1 else ''}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"{config}: ready to run", highlight=False, soft_wrap=True)
