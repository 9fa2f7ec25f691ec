"""`inbeeld-connector notice ...`: ask a group about a pupil, list and close notices.

Answers arrive through `inbeeld-connector run`: its inbox hands notice events to a desk.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from connectors.cli.options import BsnStdinOpt, read_bsn
from connectors.cli.options import ConfigOpt as _ConfigOpt
from connectors.cli.verdicts import TimeoutOpt, Waiting, WaitOpt, report, verdict_for
from connectors.verdict import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from connectors.config import ConnectorConfig
    from connectors.notices import LocalNotice, NoticeDesk
    from connectors.verdict import Verdict

__all__ = ["notice_app", "open_desk"]

notice_app = typer.Typer(
    help="Neighbour notices: ask a group about a pupil you cannot reach.", no_args_is_help=True
)


def _load_config(path: Path) -> ConnectorConfig:
    from connectors.config import ConfigError, load_config

    err = Console(stderr=True)
    try:
        cfg = load_config(path)
        token = cfg.hub.resolved_token() if cfg.hub is not None else None
    except ConfigError as exc:
        err.print(
            "config error: " + exc.message.replace("\n", "\nconfig error: "), markup=False, highlight=False
        )
        raise typer.Exit(2) from None
    if cfg.keystore is None or token is None:
        err.print("config error: notices need the [keystore] and [hub] sections (with a token)")
        raise typer.Exit(2)
    return cfg


@contextlib.asynccontextmanager
async def open_desk(cfg: ConnectorConfig, *, connect: bool = True) -> AsyncIterator[NoticeDesk]:
    """A desk wired from a connector config (keystore, local store, hub directory, broker)."""
    from connectors.services import open_services

    async with open_services(cfg, store=True, hub=True, connector=True, connect=connect) as services:
        yield services.notice_desk()


def _run(coro: Any) -> Any:
    import asyncio

    from schemas.errors import InbeeldError

    try:
        return asyncio.run(coro)
    except InbeeldError as exc:
        Console(stderr=True).print(f"error: {exc.message}", markup=False, highlight=False)
        raise typer.Exit(1) from None


@notice_app.command("send")
def _send_cmd(
    config: _ConfigOpt,
    group: Annotated[str, typer.Option(help="the group to ask, e.g. zuid-holland")],
    bsn_stdin: BsnStdinOpt = False,
    department: Annotated[str | None, typer.Option(help="contact point: department [notices]")] = None,
    phone: Annotated[str | None, typer.Option(help="contact point: phone (default: [notices])")] = None,
    email: Annotated[str | None, typer.Option(help="contact point: e-mail (default: [notices])")] = None,
    days: Annotated[float, typer.Option(help="days until the notice expires")] = 14,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Ask GROUP whether anyone registers the pupil; prints the notice id. The BSN is asked
    for (hidden) or read with --bsn-stdin, never taken from the command line, and never leaves
    this connector. A notice the hub refuses is marked `refused` (see `notice list`) and the
    command exits 1."""
    from connectors.notices import deadline_in
    from connectors.services import open_services

    cfg = _load_config(config)
    configured = cfg.notices
    contact = {
        "department": department or (configured.department if configured else None),
        "phone": phone or (configured.phone if configured else None),
        "email": email or (configured.email if configured else None),
    }
    missing = [k for k, v in contact.items() if not v]
    if missing:
        Console(stderr=True).print(f"give --{missing[0]} (or set it in the [notices] section)", markup=False)
        raise typer.Exit(2)

    bsn = read_bsn(bsn_stdin)
    waiting = Waiting(wait, timeout)

    async def main() -> tuple[str, Verdict | None]:
        async with open_services(cfg, store=True, hub=True, connector=True) as services:
            desk = services.notice_desk()
            notice_id = await desk.send_missing(group, bsn, contact, deadline_in(days))
            notice = await desk.get(notice_id)
            assert notice is not None and notice.event_id is not None
            verdict = await verdict_for(services.hub_api, notice.event_id, waiting)
            if verdict is not None and verdict.rejected:
                await desk.refused(notice.event_id, verdict.reason or "unknown")
            return notice_id, verdict

    notice_id, verdict = _run(main())
    report(verdict, notice_id, what=f"notice {notice_id} to {group}", waiting=waiting)


@notice_app.command("list")
def _list_cmd(config: _ConfigOpt) -> None:
    """The notices this connector asked or received, with their state."""
    cfg = _load_config(config)

    async def main() -> list[LocalNotice]:
        async with open_desk(cfg, connect=False) as desk:
            await desk.expire()
            return await desk.notices()

    table = RichTable("notice", "role", "asker", "state", "deadline", "answered / found by")
    for n in _run(main()):
        when = datetime.fromtimestamp(n.deadline, UTC).strftime("%Y-%m-%d %H:%M")
        detail = ", ".join(n.found_by) if n.role == "asked" else ("answered" if n.answered else "")
        table.add_row(n.notice_id, n.role, n.asker, n.state, when, detail)
    Console().print(table)


@notice_app.command("close")
def _close_cmd(
    config: _ConfigOpt,
    notice_id: Annotated[str, typer.Argument(help="the notice id `notice send` printed")],
    reason: Annotated[str, typer.Option(help="found | withdrawn | expired")] = "found",
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Close a notice you asked: every member stops looking."""
    from connectors.services import open_services

    cfg = _load_config(config)
    waiting = Waiting(wait, timeout)

    async def main() -> Verdict | None:
        async with open_services(cfg, store=True, hub=True, connector=True) as services:
            sent = await services.notice_desk().close(notice_id, reason)
            return await verdict_for(services.hub_api, sent.id, waiting)

    report(_run(main()), f"closed {notice_id}", what=f"closing notice {notice_id}", waiting=waiting)
