"""`inbeeld-connector init|check|run` and the local register (`register import|shred`, `shred`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors import inbox_name
from connectors.client import Connector, ConnectorError
from connectors.config import EXAMPLE, ConfigError, ConnectorConfig, WebhookSinkConfig, load_config
from connectors.directory import Directory
from connectors.hub_api import HubApi, HubApiError
from connectors.register import ImportReport, import_csv, shred
from connectors.runtime import Runtime
from connectors.services import open_keystore, open_services
from schemas import tracing
from schemas.errors import InbeeldError, NotFound
from schemas.observability import configure_logging

__all__ = ["check", "init", "register_app", "register_shred", "run"]

register_app = typer.Typer(help="The local pupil register.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="the connector's TOML config")]


def _load(path: Path) -> ConnectorConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        err.print(f"config error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def init(
    path: Annotated[Path, typer.Argument(help="where to write it")] = Path("connector.toml"),
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a commented example configuration."""
    if path.exists() and not force:
        err.print(f"{path} exists; use --force to overwrite it")
        raise typer.Exit(1)
    path.write_text(EXAMPLE, encoding="utf-8")
    console.print(f"wrote {path}; edit it, then run: inbeeld-connector check --config {path}")


async def _checks(cfg: ConnectorConfig) -> list[tuple[str, bool, str]]:
    results: list[tuple[str, bool, str]] = [("config", True, f"tenant {cfg.tenant}, system {cfg.system}")]
    try:
        url = cfg.broker.amqp_url()
    except ConfigError as exc:
        results.append(("broker", False, exc.message))
    else:
        connector = Connector(cfg.tenant, url, system=cfg.system, oin=cfg.oin, connect_timeout=5)
        try:
            await connector.connect()
            results.append(("broker", True, f"connected as {cfg.broker.username}"))
            results.append(await _inbox_check(cfg, connector))
        except ConnectorError as exc:
            results.append(("broker", False, exc.message))
        finally:
            await connector.close()
    if cfg.hub is not None:
        try:
            async with HubApi(cfg.hub.url, None, timeout=5) as api:
                status = await api.health()
            results.append(("hub", status < 500, f"{cfg.hub.url} answered HTTP {status}"))
        except HubApiError as exc:
            results.append(("hub", False, exc.message))
        try:
            cfg.hub.resolved_token()
        except ConfigError as exc:
            results.append(("hub token", False, exc.message))
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
        else:
            results.append(("keystore", True, f"{cfg.keystore.path} will be created on first run"))
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


async def _keys_check(cfg: ConnectorConfig, jwks: dict[str, Any]) -> tuple[str, bool, str]:
    """Would the hub take this keystore's keys for `tenant`? (A copied configuration with a
    mistyped tenant or another keystore is refused at `run`: say so before.)"""
    assert cfg.hub is not None
    try:
        token = cfg.hub.resolved_token()
    except ConfigError:
        return ("keys", False, "no hub token to ask the hub's key directory")
    if token is None:
        return ("keys", False, "no hub token to ask the hub's key directory")
    try:
        async with HubApi(cfg.hub.url, token, timeout=5) as api:
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


async def _inbox_check(cfg: ConnectorConfig, connector: Connector) -> tuple[str, bool, str]:
    """Our inbox exists and we may read it; and whether another instance is consuming it (one
    active consumer per inbox: this one would stand by until that one stops)."""
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
    """Validate the configuration and try the broker (and the hub, if configured)."""
    cfg = _load(config)
    results = asyncio.run(_checks(cfg))
    table = Table("check", "result", "detail", title=f"inbeeld-connector check {config}")
    for name, ok, detail in results:
        table.add_row(name, "[green]pass[/]" if ok else "[red]FAIL[/]", detail)
    console.print(table)
    if not all(ok for _, ok, _ in results):
        raise typer.Exit(1)


def run(
    config: ConfigOpt,
    log_format: Annotated[str, typer.Option(help="json, console or auto")] = "auto",
    log_level: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run the connector until SIGINT or SIGTERM."""
    cfg = _load(config)
    configure_logging(log_format, log_level)  # type: ignore[arg-type]
    tracing.configure("inbeeld-connector", endpoint=cfg.tracing.otlp_endpoint if cfg.tracing else None)

    async def main() -> None:
        task = asyncio.create_task(Runtime(cfg).run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    except ConfigError as exc:
        err.print(f"config error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except InbeeldError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@register_app.command("import")
def register_import(
    file: Annotated[Path, typer.Argument(help="CSV file, header row, UTF-8")],
    config: ConfigOpt,
) -> None:
    """Import pupils from CSV into the encrypted local register; report bad rows."""
    cfg = _load(config)
    if cfg.keystore is None:
        err.print("config error: keystore: the register needs a [keystore] section")
        raise typer.Exit(2)
    if not file.exists():
        err.print(f"no file {file}")
        raise typer.Exit(1)

    async def main() -> ImportReport:
        async with open_services(cfg, store=True) as services:
            assert services.store is not None
            with Progress(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("rows", total=None)
                return await import_csv(
                    services.store,
                    file,
                    progress=lambda done, total: progress.update(task, completed=done, total=total),
                )

    try:
        report = asyncio.run(main())
    except InbeeldError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(
        f"imported {report.imported} new, replaced {report.replaced}, {len(report.errors)} bad rows"
    )
    if report.errors:
        table = Table("row", "field", "why", title="rows not imported")
        for e in report.errors:
            table.add_row(str(e.row), e.field, e.why)
        console.print(table)
        raise typer.Exit(1)


@register_app.command("shred")
def register_shred(
    config: ConfigOpt,
    yes: Annotated[bool, typer.Option("--yes", help="really destroy the register")] = False,
) -> None:
    """Crypto-shred the register: its records become unreadable, then are deleted."""
    cfg = _load(config)
    if not yes:
        err.print("this destroys the pupil register; add --yes to do it")
        raise typer.Exit(1)

    async def main() -> int:
        async with open_services(cfg, store=True) as services:
            assert services.store is not None
            return await shred(services.store)

    console.print(f"shredded {asyncio.run(main())} pupil records")
