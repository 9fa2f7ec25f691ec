"""`inbeeld-connector init|run` and the local register (`register import|shred`, `shred`);
`check` is in `connectors.cli.check`."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from connectors.cli.options import DEFAULT_CONFIG, ConfigOpt

if TYPE_CHECKING:
    from connectors.config import ConnectorConfig
    from connectors.register import ImportReport

__all__ = ["ConfigOpt", "init", "load_or_exit", "register_app", "register_shred", "run"]

register_app = typer.Typer(help="The local pupil register.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def load_or_exit(path: Path) -> ConnectorConfig:
    from connectors.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for line in exc.message.splitlines():
            err.print(f"config error: {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def init(
    path: Annotated[Path, typer.Argument(help="where to write it")] = DEFAULT_CONFIG,
    tenant: Annotated[
        str | None, typer.Option(help="your tenant code (e.g. GM0599); without it, Den Haag's as an example")
    ] = None,
    name: Annotated[str | None, typer.Option(help="your organisation's name, on letters")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a commented configuration: for --tenant CODE, or an example (Den Haag's)."""
    from connectors.config import EXAMPLE, ConfigError, example_config, parse_config

    if path.exists() and not force:
        err.print(f"{path} exists; use --force to overwrite it")
        raise typer.Exit(1)
    if name is not None and tenant is None:
        err.print("--name needs --tenant")
        raise typer.Exit(2)
    text = example_config(tenant, name) if tenant is not None else EXAMPLE
    try:  # what is written must load: a bad code or name is refused here, naming the field
        parse_config(tomllib.loads(text), path.resolve().parent)
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        why = exc.message if isinstance(exc, ConfigError) else "not representable in TOML"
        err.print(f"error: {why}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    path.write_text(text, encoding="utf-8")
    console.print(f"wrote {path}; edit it, then run: inbeeld-connector check --config {path}")


def run(
    config: ConfigOpt,
    log_format: Annotated[str, typer.Option(help="json, console or auto")] = "auto",
    log_level: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Run the connector until SIGINT or SIGTERM."""
    import asyncio

    from connectors.config import ConfigError
    from connectors.runtime import Runtime
    from schemas import tracing
    from schemas.errors import InbeeldError
    from schemas.observability import configure_logging
    from schemas.signals import until_signal

    cfg = load_or_exit(config)
    try:
        cfg.tls.client_context()  # TLS files that cannot be used: say so before anything is opened
    except ConfigError as exc:
        err.print(f"config error: {exc.message}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    configure_logging(log_format, log_level)  # type: ignore[arg-type]
    tracing.configure("inbeeld-connector", endpoint=cfg.tracing.otlp_endpoint if cfg.tracing else None)

    try:
        asyncio.run(until_signal(Runtime(cfg).run))
    except ConfigError as exc:
        err.print(
            "config error: " + exc.message.replace("\n", "\nconfig error: "),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
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
    import asyncio

    from connectors.register import import_csv
    from connectors.services import open_services
    from schemas.errors import InbeeldError

    cfg = load_or_exit(config)
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
    import asyncio

    from connectors.register import shred
    from connectors.services import open_services

    cfg = load_or_exit(config)
    if not yes:
        err.print("this destroys the pupil register; add --yes to do it")
        raise typer.Exit(1)

    async def main() -> int:
        async with open_services(cfg, store=True) as services:
            assert services.store is not None
            return await shred(services.store)

    console.print(f"shredded {asyncio.run(main())} pupil records")
