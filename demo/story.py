"""The demo as a sequence of steps: `play` runs `STEPS` in order. Each flow adds its step."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from rich.console import Console
from rich.table import Table

from connectors import Connector, InboxMessage
from demo.console_step import step_console
from demo.context import DemoContext, Step
from demo.notice_step import step_notice
from demo.template_step import step_templates
from demo.transfer_step import step_transfer
from demo.workspace_step import step_workspaces
from hub import provisioning
from hub.config import Settings
from hub.provisioning import BrokerCredentials
from hub.router import Router
from hub.seed import seed_all
from hub.services import amqp_channel, ensure_deployment, management, open_database
from hub.store.db import Database
from schemas.errors import InbeeldError

TENANT_SYSTEMS = {
    "GM0518": "leerlingzaken",
    "GM0599": "leerplicht",
    "GM0307": "leerplicht",
    "GM0957": "leerplicht",
    "ingrado": "sjablonen",
}


async def collect(connector: Connector, want: int, timeout: float = 15.0) -> list[InboxMessage]:
    """Read `want` messages from a connector's inbox (acking them), or fail after `timeout`."""
    got: list[InboxMessage] = []

    async def read() -> None:
        async for message in connector.inbox(idle_timeout=timeout):
            await message.ack()
            got.append(message)
            if len(got) >= want:
                return

    await asyncio.wait_for(read(), timeout)
    return got


async def step_hello(ctx: DemoContext) -> None:
    """Every tenant greets the next one through the hub; show who sent what to whom."""
    codes = sorted(ctx.connectors)
    pairs = [(a, codes[(i + 1) % len(codes)]) for i, a in enumerate(codes)]
    sent = {}
    for sender, recipient in pairs:
        ev = await ctx.connectors[sender].send(
            "nl.leerplicht.ping", {"text": f"hello from {ctx.names[sender]}"}, [recipient]
        )
        sent[ev.id] = (sender, recipient)
    arrived = {}
    for code in codes:
        for m in await collect(ctx.connectors[code], 1):
            arrived[m.event.id] = (code, m.event.sequence, m.event.data["text"])
    table = Table("from", "to", "type", "arrived", "seq", "text", title="hello through the hub")
    rows = []
    for event_id, (sender, recipient) in sent.items():
        got = arrived.get(event_id)
        ok = got is not None and got[0] == recipient
        table.add_row(
            ctx.names[sender],
            ctx.names[recipient],
            "ping",
            "[green]yes[/]" if ok else "[red]no[/]",
            str(got[1]) if got else "",
            got[2] if got else "",
        )
        rows.append(
            {
                "event_id": event_id,
                "from": sender,
                "to": recipient,
                "arrived": ok,
                "sequence": got[1] if got else None,
            }
        )
    ctx.console.print(table)
    ctx.results["hello"] = rows
    if not all(r["arrived"] for r in rows):
        raise RuntimeError("not every hello arrived")


STEPS: list[Step] = [
    ("Every tenant says hello through the hub", step_hello),
    ("Ingrado shares its letters; Den Haag writes to a pupil it has lost", step_templates),
    ("Den Haag has lost sight of a pupil and asks its neighbours", step_notice),
    ("The pupil moved: Den Haag hands his file to Rotterdam", step_transfer),
    ("The officers' workspaces of Den Haag and Rotterdam, each in its house style", step_workspaces),
    ("The hub operator's console shows what went through", step_console),
]


# The description the demo gives the vhosts it makes: the only ones it ever resets.
DEMO_VHOST_MARK = "inbeeld demo (reset by every run of `inbeeld demo`)"


class DemoRefused(InbeeldError):
    reason = "demo_refused"


def _demo_users(settings: Settings) -> list[str]:
    """The broker users the demo makes: one per seed tenant (hub.provisioning.broker_username)."""
    return [provisioning.broker_username(settings.vhost, code) for code in TENANT_SYSTEMS]


async def _reset(settings: Settings, out: Path) -> None:
    """Start from a fresh vhost. A vhost that exists and was not made by the demo (another
    deployment's, or anyone's) is refused and left as it is: resetting it would delete its
    queues and messages, and playing inside it would add demo tenants to a real registry."""
    async with management(settings) as mgmt:
        await mgmt.overview()
        description = await mgmt.vhost_description(settings.vhost)
        if description is not None and description != DEMO_VHOST_MARK:
            raise DemoRefused(
                f"vhost {settings.vhost} exists and was not made by `inbeeld demo`; it is left as it is. "
                "Give the demo a vhost of its own (--vhost or INBEELD_VHOST)"
            )
        if description is not None:
            await mgmt.delete_vhost(settings.vhost)
            for user in _demo_users(settings):  # left by an earlier run that was killed
                await mgmt.delete_user(user)
        await mgmt.create_vhost(settings.vhost, description=DEMO_VHOST_MARK)
        await ensure_deployment(settings, mgmt)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


async def _remove_users(settings: Settings, creds: dict[str, BrokerCredentials]) -> None:
    async with management(settings) as mgmt:
        for c in creds.values():
            await mgmt.delete_user(c.username)


async def play(
    base: Settings, out: Path, vhost: str, console: Console, *, serve: bool = False, port: int = 8000
) -> None:
    out = out.resolve()
    settings = base.model_copy(
        update={"vhost": vhost, "database_url": f"sqlite+aiosqlite:///{out / 'hub.db'}"}
    )
    await _reset(settings, out)
    console.rule("[bold]Inbeeld demo[/] — keeping every pupil in view")
    db = await open_database(settings)
    creds: dict[str, BrokerCredentials] = {}
    try:
        await _play(settings, out, vhost, console, db, creds, serve=serve, port=port)
    finally:
        await db.close()
        await _remove_users(settings, creds)  # made for the story; nothing may log in after it
    console.print(f"the demo's broker users are removed; vhost {vhost} stays until the next run")


async def _play(
    settings: Settings,
    out: Path,
    vhost: str,
    console: Console,
    db: Database,
    creds: dict[str, BrokerCredentials],
    *,
    serve: bool,
    port: int,
) -> None:
    async with management(settings) as mgmt, amqp_channel(settings) as channel:
        async with db.session() as s, s.begin():
            tenants = await seed_all(s)
            for t in tenants:
                creds[t.code] = await provisioning.provision_tenant(s, mgmt, channel, settings, t.code)
    names = {t.code: f"{t.name.removeprefix('Gemeente ').split(',')[0]} ({t.code})" for t in tenants}
    console.print(
        f"hub on vhost [bold]{vhost}[/], database {out / 'hub.db'}; "
        f"{len(tenants)} tenants provisioned: " + ", ".join(names.values())
    )
    router = Router(settings, db)
    await router.start()
    ctx = DemoContext(settings, out, console, db, router, names, serve=serve, serve_port=port)
    try:
        for t in tenants:
            c = Connector(
                t.code,
                settings.amqp_url_for(user=creds[t.code].username, password=creds[t.code].password),
                inbox_name=creds[t.code].inbox,
                system=TENANT_SYSTEMS.get(t.code, "connector"),
            )
            await c.connect()
            ctx.connectors[t.code] = c
        for number, (title, step) in enumerate(STEPS, 1):
            console.rule(f"step {number}: {title}")
            if step is step_console:  # the story is told; with --serve this step holds the hub
                console.print(f"[green]demo complete[/]; artefacts in {out}")
            await step(ctx)
            (out / "demo.json").write_text(json.dumps(ctx.results, indent=2, default=str))
    finally:
        for c in ctx.connectors.values():
            await c.close()
        await router.stop()
