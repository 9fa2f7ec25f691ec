"""`inbeeld-connector serve` (the web workspace) and its local accounts (`user add|list`)."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from connectors.roles import ROLES

if TYPE_CHECKING:
    from connectors import accounts
    from connectors.config import ConnectorConfig

__all__ = ["serve", "user_app"]

user_app = typer.Typer(help="The workspace's local accounts.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="the connector's TOML config")]


def _say(console_: Console, text: str) -> None:
    console_.print(text, markup=False, highlight=False, soft_wrap=True)


def _load(path: Path) -> ConnectorConfig:
    from connectors.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        _say(err, f"config error: {exc.message}")
        raise typer.Exit(2) from None


def _run(coro: object) -> object:
    import asyncio

    from connectors.config import ConfigError
    from schemas.errors import InbeeldError

    try:
        return asyncio.run(coro)  # type: ignore[arg-type]
    except ConfigError as exc:
        _say(err, f"config error: {exc.message}")
        raise typer.Exit(2) from None
    except InbeeldError as exc:
        field = f" ({exc.field})" if exc.field else ""
        _say(err, f"error{field}: {exc.message}")
        raise typer.Exit(1) from None


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="the login name: lowercase letters, digits, . _ -")],
    config: ConfigOpt,
    role: Annotated[str, typer.Option(help=", ".join(ROLES))],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
    sso: Annotated[
        bool,
        typer.Option(
            "--sso",
            help="signs in through the reverse proxy's single sign-on ([workspace] trusted_header): "
            "no password of its own",
        ),
    ] = False,
) -> None:
    """Add a workspace account (the password is asked, or read with --password-stdin; with
    --sso it has none that works: the reverse proxy vouches for it)."""
    from connectors import accounts
    from connectors.services import open_services

    cfg = _load(config)
    if role not in ROLES:
        _say(err, f"error (role): a role is one of {', '.join(ROLES)}")
        raise typer.Exit(1)
    if sso:
        password = secrets.token_urlsafe(48)  # never shown: no login with a password
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)

    async def main() -> None:
        async with open_services(cfg, keystore=False, store=True) as services:
            assert services.store is not None
            await accounts.add(services.store, name, role, password)

    _run(main())
    _say(console, f"account {name} added with role {role}")


@user_app.command("list")
def user_list(config: ConfigOpt) -> None:
    """The workspace's accounts and their roles."""
    from connectors import accounts
    from connectors.services import open_services

    cfg = _load(config)

    async def main() -> list[accounts.Account]:
        async with open_services(cfg, keystore=False, store=True) as services:
            assert services.store is not None
            return await accounts.names(services.store)

    found = _run(main())
    assert isinstance(found, list)
    for account in found:
        _say(console, f"{account.name}\t{account.role}")


def serve(
    config: ConfigOpt,
    host: Annotated[str | None, typer.Option(help="listen address (default: [workspace] host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: [workspace] port)")] = None,
    log_format: Annotated[str, typer.Option(help="json, console or auto")] = "auto",
    log_level: Annotated[str, typer.Option()] = "INFO",
) -> None:
    """Serve the web workspace (werkbak) until SIGINT or SIGTERM."""
    import asyncio

    import structlog
    import uvicorn

    from connectors.config import ConfigError
    from connectors.services import open_services
    from connectors.workspace import create_workspace
    from connectors.workspace.identity import ProxyIdentity
    from schemas.observability import configure_logging

    log = structlog.get_logger("inbeeld.connector.workspace")
    cfg = _load(config)
    if cfg.keystore is None or cfg.hub is None:
        _say(err, "config error: the workspace opens sealed dossiers: configure [keystore] and [hub]")
        raise typer.Exit(2)
    configure_logging(log_format, log_level)  # type: ignore[arg-type]
    settings = cfg.workspace
    secret = os.environ.get(settings.secret_env) if settings.secret_env else None

    async def main() -> None:
        async with open_services(
            cfg, store=True, hub=True, connector=True, seal_connector=True, publish_deadline=30
        ) as services:
            proxy = (
                ProxyIdentity.of(settings.trusted_header, [str(n) for n in settings.trusted_proxies])
                if settings.trusted_header
                else None
            )
            app = create_workspace(
                services,
                secret=secret,
                idle_minutes=settings.idle_minutes,
                proxy=proxy,
                theme=settings.theme,
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=host or settings.host,
                    port=settings.port if port is None else port,
                    log_config=None,
                    access_log=False,
                    # The peer is the address a trusted header is checked against: not one
                    # rewritten from X-Forwarded-For.
                    proxy_headers=False,
                )
            )
            serving = asyncio.create_task(server.serve())  # it handles SIGINT and SIGTERM
            while not server.started:
                if serving.done():
                    with contextlib.suppress(SystemExit):
                        serving.result()
                    raise ConfigError("the workspace cannot listen on its address (in use?)")
                await asyncio.sleep(0.05)
            bound = server.servers[0].sockets[0].getsockname()
            log.info("workspace.serving", url=f"http://{bound[0]}:{bound[1]}/", tenant=cfg.tenant)
            await serving

    _run(main())
