"""`inbeeld`: the hub and its operator's tools."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from hub.auth import Scope
    from hub.config import Settings
    from hub.tenants import TenantInfo

# Each command imports what it runs when it runs (the API, the store, the broker's clients,
# tracing): `inbeeld --help`, and every command's start, must not pay for all of them.

app = typer.Typer(
    help="Inbeeld hub: routes events between municipalities and partners; never reads personal data.",
    no_args_is_help=True,
    add_completion=False,
)
tenant_app = typer.Typer(help="Register, list, provision and suspend tenants.", no_args_is_help=True)
group_app = typer.Typer(help="Named groups of tenants (regions, custom lists).", no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens (shown once, stored hashed).", no_args_is_help=True)
dead_letter_app = typer.Typer(help="Messages the router could not route.", no_args_is_help=True)
operator_app = typer.Typer(help="The operators' logins to the web console (/console).", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(group_app, name="group")
app.add_typer(token_app, name="token")
app.add_typer(dead_letter_app, name="dead-letter")
app.add_typer(operator_app, name="operator")

ROW_ID_MAX = 2**31 - 1  # the store's INTEGER ids
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


def run(coro_fn: Callable[[], Awaitable[T]], settings: Settings | None = None, *, service: bool = False) -> T:
    """Run a command; service outages become one line and exit 2, refusals exit 1.

    Logs are human text, unless INBEELD_LOG_FORMAT=json asks for JSON lines; only a
    long-running `service` (serve, router) logs JSON lines by itself when its output is not a
    terminal (`auto`), for the journal or a log collector."""
    import asyncio

    from hub.config import get_settings
    from hub.errors import ServiceUnavailable
    from schemas import tracing
    from schemas.errors import InbeeldError
    from schemas.observability import configure_logging

    settings = settings or get_settings()
    fmt = settings.log_format
    configure_logging("console" if fmt == "auto" and not service else fmt, settings.log_level)
    tracing.configure("inbeeld-hub", endpoint=settings.otlp_endpoint)
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except ServiceUnavailable as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except InbeeldError as exc:
        err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def migrate() -> None:
    """Create or upgrade the hub's database schema, then move old-style tenant inboxes."""
    from hub import inboxes
    from hub.config import get_settings
    from hub.services import amqp_channel, management, open_database

    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        try:
            console.print(f"database at revision [bold]{', '.join(await db.current_revision())}[/]")
            async with management(settings) as mgmt:
                if not await mgmt.vhost_exists(settings.vhost):
                    console.print(f"no vhost {settings.vhost} on the broker yet: no inboxes to move")
                    return
                async with amqp_channel(settings) as channel:
                    outcomes = await inboxes.migrate_all(db, mgmt, channel, settings)
        finally:
            await db.close()
        moved = [o for o in outcomes if o.moved]
        left = [o.tenant for o in outcomes if o.legacy_left]
        console.print(
            f"{len(outcomes)} tenant inboxes in place; {sum(o.moved for o in moved)} messages moved "
            f"from {len(moved)} old-style inboxes"
        )
        if left:
            err.print(f"old-style inboxes not empty yet (run again): {', '.join(left)}")
            raise typer.Exit(1)

    run(go)


@app.command()
def seed() -> None:
    """Load the five seed tenants and seed groups (existing ones are kept)."""
    from hub.config import get_settings
    from hub.seed import seed_all
    from hub.services import open_database

    async def go() -> None:
        db = await open_database(get_settings())
        async with db.session() as s, s.begin():
            tenants = await seed_all(s)
        await db.close()
        console.print(f"{len(tenants)} tenants registered")

    run(go)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (INBEELD_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (INBEELD_API_PORT)")] = None,
    router: Annotated[bool, typer.Option("--router/--no-router", help="Run the router here too")] = True,
) -> None:
    """Run the HTTP API (and, unless --no-router, the router) in one process."""
    import asyncio

    import structlog
    import uvicorn  # only `serve` needs the ASGI server

    from hub.api.app import create_app
    from hub.api.server import server_config
    from hub.config import get_settings
    from hub.router import Router
    from hub.services import ensure_deployment, management, open_database

    log = structlog.get_logger("inbeeld.hub.cli")

    settings = get_settings()

    async def go() -> None:
        settings.api_ssl_context()  # TLS files that cannot be used: say so before anything starts
        db = await open_database(settings)
        mgmt = management(settings)
        await ensure_deployment(settings, mgmt)
        await mgmt.aclose()
        the_router = Router(settings, db) if router else None
        if the_router is not None:
            await the_router.start()
        config = server_config(create_app(settings, db), settings, host=host, port=port)
        server = uvicorn.Server(config)
        try:
            serving = asyncio.create_task(server.serve())
            while not server.started and not serving.done():  # uvicorn has no "started" hook
                await asyncio.wait({serving}, timeout=0.05)
            if server.started:
                where = server.servers[0].sockets[0].getsockname()
                url = f"{'https' if config.is_ssl else 'http'}://{where[0]}:{where[1]}"
                log.info("api.listening", url=url, docs=f"{url}/docs", console=f"{url}/console")
            await serving
        finally:
            if the_router is not None:
                await the_router.stop()
            await db.close()

    run(go, settings, service=True)


@app.command("router")
def router_cmd() -> None:
    """Run only the router (several may run side by side as competing consumers)."""
    from hub.config import get_settings
    from hub.router import Router
    from hub.services import ensure_deployment, management, open_database
    from schemas.signals import until_signal

    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        mgmt = management(settings)
        await ensure_deployment(settings, mgmt)
        await mgmt.aclose()
        try:
            await until_signal(Router(settings, db).run_forever, grace=12.0)  # a batch finishes
        finally:
            await db.close()

    run(go, settings, service=True)


# -- tenants ---------------------------------------------------------------------------------


def _tenant_table(tenants: list[TenantInfo]) -> Table:
    table = Table("code", "name", "kind", "OIN", "active", "broker user")
    for t in tenants:
        active = "removed" if t.removed else "yes" if t.active else "[red]no[/]"
        table.add_row(t.code, t.name, t.kind, t.oin or "", active, t.broker_username or "")
    return table


@tenant_app.command("add")
def tenant_add(
    code: str,
    name: str,
    kind: Annotated[str, typer.Option(help="municipality | regional_bureau | association")] = "municipality",
    oin: Annotated[str | None, typer.Option(help="20-digit government organisation number")] = None,
) -> None:
    """Register a tenant."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import open_database

    async def go() -> None:
        db = await open_database(get_settings())
        async with db.session() as s, s.begin():
            t = await operator_actions.add_tenant(s, Actor.cli(), code, name, kind, oin)
        await db.close()
        console.print(_tenant_table([t]))

    run(go)


@tenant_app.command("list")
def tenant_list() -> None:
    """List tenants."""
    from hub import registry
    from hub.config import get_settings
    from hub.services import open_database

    async def go() -> None:
        db = await open_database(get_settings())
        async with db.session() as s:
            tenants = await registry.list_tenants(s)
        await db.close()
        console.print(_tenant_table(tenants))

    run(go)


@tenant_app.command("provision")
def tenant_provision(
    code: str,
    broker_url: Annotated[
        str | None,
        typer.Option(
            help="The broker as the tenant reaches it, e.g. amqps://hub.example.nl:5671 "
            "(default: host and port of INBEELD_AMQP_URL)"
        ),
    ] = None,
) -> None:
    """Create the tenant's broker user and inbox; prints the connector's `\\[broker]` section and
    its password ONCE."""
    from hub import operator_actions, provisioning
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import amqp_channel, ensure_deployment, management, open_database

    settings = get_settings()
    public = broker_url or settings.amqp_url
    if urlsplit(public).scheme not in ("amqp", "amqps") or not urlsplit(public).hostname:
        err.print("error: --broker-url must be an amqp:// or amqps:// URL with a host")
        raise typer.Exit(2)

    async def go() -> None:
        db = await open_database(settings)
        async with management(settings) as mgmt:
            await ensure_deployment(settings, mgmt)
            async with amqp_channel(settings) as channel, db.session() as s, s.begin():
                creds = await operator_actions.provision_tenant(s, mgmt, channel, settings, Actor.cli(), code)
        await db.close()
        console.print(f"broker user [bold]{creds.username}[/] on vhost {creds.vhost}")
        console.print(f"inbox (the connector's broker.inbox): [bold]{creds.inbox}[/]")
        console.print("the [broker] section of the tenant's connector.toml, ready to paste:", markup=False)
        print(provisioning.connector_broker_block(creds, public), end="")  # verbatim, not wrapped
        console.print(f"set {provisioning.PASSWORD_ENV} in the connector's environment to the password")
        console.print(f"password (shown once, not stored): [bold]{creds.password}[/]")

    run(go)


@tenant_app.command("remove")
def tenant_remove(
    code: str,
    force: Annotated[
        bool, typer.Option(help="Drop the messages still waiting in its inbox (they are lost)")
    ] = False,
) -> None:
    """Remove a tenant: its broker user and inbox are deleted, its row is kept marked removed
    (the audit chain keeps its records; the code is never given again). Refused while it is
    part of an open transfer, and while its inbox holds messages unless --force; audited."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import amqp_channel, management, open_database

    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        try:
            async with management(settings) as mgmt, amqp_channel(settings) as channel:
                async with db.session() as s, s.begin():
                    dropped = await operator_actions.remove_tenant(
                        s, mgmt, channel, settings, Actor.cli(), code, force=force
                    )
        finally:
            await db.close()
        console.print(f"{code} removed" + (f"; {dropped} waiting message(s) dropped" if dropped else ""))

    run(go)


@tenant_app.command("suspend")
def tenant_suspend(code: str) -> None:
    """Suspend a tenant: revoke broker access and close its connections at once."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import management, open_database

    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        async with management(settings) as mgmt, db.session() as s, s.begin():
            closed = await operator_actions.suspend_tenant(s, mgmt, settings, Actor.cli(), code)
        await db.close()
        console.print(f"{code} suspended; {closed} connection(s) closed")

    run(go)


@tenant_app.command("reinstate")
def tenant_reinstate(code: str) -> None:
    """Reinstate a suspended tenant: restore its broker rights and API tokens."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import management, open_database

    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        async with management(settings) as mgmt, db.session() as s, s.begin():
            await operator_actions.reinstate_tenant(s, mgmt, settings, Actor.cli(), code)
        await db.close()
        console.print(f"{code} reinstated")

    run(go)


@tenant_app.command("rotate-password")
def tenant_rotate_password(
    code: str,
    keep_connections: Annotated[
        bool, typer.Option(help="Leave open connections (planned hand-over); default: close them")
    ] = False,
) -> None:
    """Give the tenant's broker user a new password; prints it ONCE."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import management, open_database

    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        async with management(settings) as mgmt, db.session() as s, s.begin():
            creds, closed = await operator_actions.rotate_broker_password(
                s, mgmt, settings, Actor.cli(), code, close_connections=not keep_connections
            )
        await db.close()
        console.print(f"broker user [bold]{creds.username}[/] on vhost {creds.vhost}")
        console.print(f"{closed} open connection(s) closed; they must reconnect with the new password")
        console.print(f"password (shown once, not stored): [bold]{creds.password}[/]")

    run(go)


@app.command()
def doctor(
    probe: Annotated[
        bool, typer.Option("--probe/--no-probe", help="Try forbidden operations as a probe tenant")
    ] = True,
) -> None:
    """Check the live deployment (topology, tenant permissions, isolation, store); exit 1 on a failure."""
    from hub import doctor as hub_doctor  # `doctor` is this command
    from hub.config import get_settings

    settings = get_settings()

    async def go() -> bool:
        checks = await hub_doctor.run_checks(settings, probe=probe)
        console.print(hub_doctor.table(checks))
        return hub_doctor.failed(checks)

    if run(go, settings):
        raise typer.Exit(1)


# -- groups ----------------------------------------------------------------------------------


@group_app.command("add")
def group_add(
    name: str,
    members: Annotated[list[str], typer.Argument(help="Tenant codes")],
    description: str = "",
) -> None:
    """Create a group of tenants."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import open_database

    async def go() -> None:
        db = await open_database(get_settings())
        async with db.session() as s, s.begin():
            added = await operator_actions.add_group(s, Actor.cli(), name, members, description)
        await db.close()
        console.print(f"group {name}: {', '.join(added)}")

    run(go)


@group_app.command("list")
def group_list() -> None:
    """List groups and their members."""
    from hub import registry
    from hub.config import get_settings
    from hub.services import open_database

    async def go() -> None:
        db = await open_database(get_settings())
        async with db.session() as s:
            groups = await registry.list_groups(s)
        await db.close()
        table = Table("group", "members")
        for name, members in groups.items():
            table.add_row(name, ", ".join(members))
        console.print(table)

    run(go)


# -- tokens ----------------------------------------------------------------------------------


@token_app.command("create")
def token_create(
    tenant: Annotated[str | None, typer.Option(help="Tenant code; omit with --operator")] = None,
    operator: Annotated[bool, typer.Option(help="An operator token")] = False,
    label: str = "",
) -> None:
    """Create an API token; prints it ONCE."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import open_database

    if operator == (tenant is not None):
        err.print("error: give either --operator or --tenant CODE")
        raise typer.Exit(2)

    async def go() -> None:
        db = await open_database(get_settings())
        async with db.session() as s, s.begin():
            scope: Scope = "operator" if operator else "tenant"
            token_id, token = await operator_actions.create_token(s, Actor.cli(), scope, tenant, label)
        await db.close()
        console.print(f"token {token_id} (shown once, stored hashed): [bold]{token}[/]")

    run(go)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(min=0, max=ROW_ID_MAX)]) -> None:
    """Revoke a token by its id."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import open_database

    async def go() -> None:
        db = await open_database(get_settings())
        try:
            async with db.session() as s, s.begin():
                await operator_actions.revoke_token(s, Actor.cli(), token_id)
        finally:
            await db.close()
        console.print(f"token {token_id} revoked")

    run(go)


@tenant_app.command("replace-keys")
def tenant_replace_keys(
    code: str,
    jwks_file: Annotated[Path, typer.Argument(help="the tenant's new public JWK Set (JSON)")],
) -> None:
    """Replace a tenant's public keys without a rotation proof (a lost keystore, a leaked key);
    audited, and announced to every tenant with key.rotated."""
    from hub import key_registration
    from hub.config import get_settings
    from hub.services import open_database

    try:
        body = json.loads(jwks_file.read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        err.print(f"[bold red]error:[/] cannot read a JWK Set from {jwks_file} ({type(exc).__name__})")
        raise typer.Exit(1) from None
    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        try:
            done = await key_registration.replace_as_operator(db, settings, code, body, actor="cli:operator")
        finally:
            await db.close()
        kids = ", ".join(k["kid"] for k in done.keys)
        console.print(f"{code}: keys {'replaced' if done.changed else 'unchanged'}; published: {kids}")

    run(go)


# -- console logins --------------------------------------------------------------------------


@operator_app.command("add")
def operator_add(
    name: Annotated[str, typer.Argument(help="The login name (lowercase letters, digits, . _ -)")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (scripts)")
    ] = False,
) -> None:
    """Create a login for the web console; asks for the password (never on the command line)."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import open_database

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        try:
            async with db.session() as s, s.begin():
                await operator_actions.add_login(s, Actor.cli(), name, password)
        finally:
            await db.close()
        console.print(f"console login {name} added")

    run(go, settings)


# -- dead letters ----------------------------------------------------------------------------


@dead_letter_app.command("replay")
def dead_letter_replay(
    dl_id: Annotated[int, typer.Argument(min=0, max=ROW_ID_MAX, help="Its id (GET /dead-letters)")],
) -> None:
    """Send a dead letter to the router again, once its cause is fixed."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import open_database

    settings = get_settings()

    async def go() -> None:
        db = await open_database(settings)
        try:
            await operator_actions.replay(settings, db, Actor.cli(), dl_id)
        finally:
            await db.close()
        console.print(f"dead letter {dl_id} replayed")

    run(go)


@dead_letter_app.command("discard")
def dead_letter_discard(
    dl_id: Annotated[int, typer.Argument(min=0, max=ROW_ID_MAX, help="Its id (GET /dead-letters)")],
    reason: Annotated[str, typer.Option("--reason", help="why it will not be replayed (no personal data)")],
) -> None:
    """Discard a dead letter that will not be replayed; its kept body is dropped."""
    from hub import operator_actions
    from hub.config import get_settings
    from hub.operator_actions import Actor
    from hub.services import open_database

    settings = get_settings()
    text = reason.strip()
    if not 3 <= len(text) <= 200 or any(ord(c) < 32 for c in text):
        console.print("--reason: 3 to 200 characters on one line")
        raise typer.Exit(2)

    async def go() -> None:
        db = await open_database(settings)
        try:
            async with db.session() as s, s.begin():
                await operator_actions.discard(s, Actor.cli(), dl_id, text)
        finally:
            await db.close()
        console.print(f"dead letter {dl_id} discarded")

    run(go)


COMMANDS_GROUP = "inbeeld.commands"  # entry points that add commands (the demo's is one)


def _add_plugin_commands() -> None:
    """Commands other installed packages contribute (`inbeeld demo` from the demo package),
    found through entry points, so the hub imports none of them."""
    for entry in entry_points(group=COMMANDS_GROUP):
        app.command(entry.name)(entry.load())


def main() -> None:
    _add_plugin_commands()
    try:
        app()
    except Exception as exc:
        from pydantic import ValidationError  # not loaded for a command line that only prints help

        if not isinstance(exc, ValidationError):
            raise
        # INBEELD_* settings that do not make sense: every one
        for problem in exc.errors(include_input=False, include_url=False):
            where = "_".join(str(p) for p in problem["loc"]).upper()
            why = problem["msg"].removeprefix("Value error, ")
            name = f"INBEELD_{where}" if where else "settings"
            err.print(f"error: {name}: {why}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
