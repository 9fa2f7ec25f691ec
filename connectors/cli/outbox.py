"""`inbeeld-connector outbox list|retry|drop`: the webhook items that need an operator.

An event the case system refuses for good (HTTP 4xx other than 408/429) is parked after
`park_after` tries, and the later events of its subject wait behind it; one not delivered
within `retry_days` is given up. Both stay here until retried or dropped (`connectors.outbox`).
Works beside a running connector: it notices within seconds.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar, cast

import typer
from rich.console import Console

from connectors.cli.options import ConfigOpt

if TYPE_CHECKING:
    from connectors.config import ConnectorConfig
    from connectors.outbox import OutboxEntry
    from connectors.store import LocalStore

__all__ = ["outbox_app"]

outbox_app = typer.Typer(
    help="Webhook events that wait for an operator: parked (refused by the case system) or given up.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)
SinkOpt = Annotated[str | None, typer.Option("--sink", help="only this sink (its name in [[sinks]])")]
T = TypeVar("T")


def _say(to: Console, text: str) -> None:
    to.print(text, markup=False, highlight=False, soft_wrap=True)


def _config(path: Path) -> ConnectorConfig:
    from connectors.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        _say(err, f"config error: {exc.message}")
        raise typer.Exit(2) from None


def _in_store(cfg: ConnectorConfig, use: Callable[[LocalStore], Awaitable[T]]) -> T:
    """Run `use` on the local store; a refusal (unknown id, wrong state) exits 1 with its message."""
    import asyncio

    from connectors.services import open_services
    from schemas.errors import InbeeldError

    async def main() -> T:
        # Metadata only: no keystore needed (the bodies stay encrypted and unread).
        async with open_services(cfg, keystore=False, store=True) as services:
            assert services.store is not None
            return await use(services.store)

    try:
        return asyncio.run(main())
    except InbeeldError as exc:
        _say(err, f"error: {exc.message}")
        raise typer.Exit(1) from None


def _when(ts: float | None) -> str:
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _line(e: OutboxEntry) -> str:
    detail = {
        "held": f"waits for item {e.held_by}",
        "parked": f"{e.reason or ''}; holds {e.holds}" if e.holds else (e.reason or ""),
        "given_up": f"last HTTP {e.last_status}" if e.last_status else "no answer",
        "dropped": f"dropped: {e.reason or ''}",
    }.get(e.state, "")
    subject = e.subject or "-"
    return (
        f"{e.id:>6}  {e.state:<9} {e.sink:<16} {e.event_type:<36} subject {subject:<24} "
        f"event {e.event_id}  queued {_when(e.created_at)}  tries {e.attempts}  {detail}".rstrip()
    )


@outbox_app.command("list")
def _list_cmd(
    config: ConfigOpt,
    state: Annotated[
        str,
        typer.Option(
            help="parked, given_up, held, pending, dropped, or all (every item not delivered or dropped)"
        ),
    ] = "all",
    sink: SinkOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
) -> None:
    """The outbox items in STATE, oldest first (metadata only, never a body)."""
    from connectors import outbox

    if state not in outbox.LISTED:
        _say(err, f"--state must be one of: {', '.join(outbox.LISTED)}")
        raise typer.Exit(2)
    cfg = _config(config)
    listed = cast(outbox.Listed, state)  # checked against LISTED above
    found = _in_store(cfg, lambda store: outbox.entries(store, listed, sink))
    if as_json:
        for e in found:
            _say(console, json.dumps(asdict(e), sort_keys=True))
        return
    for e in found:
        _say(console, _line(e))
    counts = {s: sum(1 for e in found if e.state == s) for s in ("parked", "given_up", "held", "pending")}
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
    _say(console, f"{len(found)} item(s)" + (f": {summary}" if summary else ""))


@outbox_app.command("retry")
def _retry_cmd(
    config: ConfigOpt,
    item: Annotated[int | None, typer.Argument(help="the item's id (`outbox list`)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every parked and given-up item")] = False,
    sink: SinkOpt = None,
) -> None:
    """Queue a parked or given-up item again (then the items it held, in order)."""
    from connectors import outbox

    if (item is None) == (not all_):
        _say(err, "give an item id or --all (not both)")
        raise typer.Exit(2)
    cfg = _config(config)
    if item is not None:
        one = item
        entry = _in_store(cfg, lambda store: outbox.retry(store, one, tenant=cfg.tenant))
        _say(console, f"item {entry.id} ({entry.event_type}, event {entry.event_id}) is queued again")
        return
    retried = _in_store(cfg, lambda store: outbox.retry_all(store, sink, tenant=cfg.tenant))
    _say(
        console,
        f"{len(retried)} item(s) queued again"
        + (f": {', '.join(str(e.id) for e in retried)}" if retried else ""),
    )


@outbox_app.command("drop")
def _drop_cmd(
    config: ConfigOpt,
    item: Annotated[int, typer.Argument(help="the item's id (`outbox list`)")],
    reason: Annotated[str, typer.Option("--reason", help="why it is given up (kept, and logged)")],
) -> None:
    """Give up a parked or given-up item for good; the items it held go on."""
    from connectors import outbox

    if not reason.strip():
        _say(err, "--reason must say why the item is given up")
        raise typer.Exit(2)
    cfg = _config(config)
    entry, released = _in_store(cfg, lambda store: outbox.drop(store, item, reason, tenant=cfg.tenant))
    _say(
        console,
        f"item {entry.id} ({entry.event_type}, event {entry.event_id}) dropped; "
        f"{released} held item(s) released",
    )
