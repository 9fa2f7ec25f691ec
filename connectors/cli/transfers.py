"""`inbeeld-connector transfer ...`: offer, answer, close and list pupil transfers.

The SDK side (building and sending the events) is `connectors.transfers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from connectors.cli.options import ConfigOpt
from connectors.cli.verdicts import TimeoutOpt, Waiting, WaitOpt, report, verdict_for
from connectors.verdict import DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from connectors.client import Connector
    from connectors.config import ConnectorConfig
    from connectors.verdict import Verdict
    from schemas.envelope import CloudEvent

__all__ = ["transfer_app"]

transfer_app = typer.Typer(help="Pupil transfers: offer, answer, close, list.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
NoteOpt = Annotated[str | None, typer.Option("--note", help="a short note for the other party")]


def _say(console_: Console, text: str) -> None:
    console_.print(text, markup=False, highlight=False, soft_wrap=True)


def _config(path: Path) -> ConnectorConfig:
    from connectors.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        _say(err, "config error: " + exc.message.replace("\n", "\nconfig error: "))
        raise typer.Exit(2) from None
    if cfg.keystore is None or cfg.hub is None:
        _say(err, "config error: transfers are sealed: configure [keystore] and [hub]")
        raise typer.Exit(2)
    return cfg


def _token(cfg: ConnectorConfig) -> str:
    from connectors.config import ConfigError

    assert cfg.hub is not None
    try:
        token = cfg.hub.resolved_token()
    except ConfigError as exc:
        _say(err, "config error: " + exc.message.replace("\n", "\nconfig error: "))
        raise typer.Exit(2) from None
    if token is None:
        _say(err, "config error: hub.token_env: the hub API token is needed for transfers")
        raise typer.Exit(2)
    return token


async def _send(cfg: ConnectorConfig, action: Any, waiting: Waiting) -> tuple[CloudEvent, Verdict | None]:
    """Run `action(connector)` with a sealing connector built from the config; the event it
    sent, and the hub's verdict on it (None: not waited for)."""
    from connectors.services import open_services

    _token(cfg)  # says which setting is missing before anything is opened
    # The store keeps the processing log: what is sent from here is logged like what `run` sends.
    async with open_services(
        cfg, store=True, hub=True, connector=True, seal_connector=True, publish_deadline=30
    ) as services:
        assert services.keystore is not None
        sent: CloudEvent = await action(services.connector)
        return sent, await verdict_for(services.hub_api, sent.id, waiting)


def _run(coro: Any) -> Any:
    import asyncio

    from connectors.client import ConnectorError
    from connectors.config import ConfigError
    from schemas.errors import InbeeldError

    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        _say(err, "config error: " + exc.message.replace("\n", "\nconfig error: "))
        raise typer.Exit(2) from None
    except (InbeeldError, ConnectorError) as exc:
        field = f" ({exc.field})" if exc.field else ""
        _say(err, f"error{field}: {exc.message}")
        raise typer.Exit(1) from None


@transfer_app.command("offer")
def offer_command(
    to: Annotated[str, typer.Option("--to", help="the receiving tenant, e.g. GM0599")],
    file: Annotated[Path, typer.Option("--file", "-f", help="the dossier (JSON)")],
    config: ConfigOpt,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Offer a pupil's dossier to another municipality (sealed to it)."""
    from connectors.transfers import offer, validate_dossier
    from schemas import nesting
    from schemas.errors import SchemaInvalid, TooDeep

    try:
        raw = nesting.loads(file.read_text("utf-8"), what=str(file))
    except OSError as exc:
        _say(err, f"cannot read {file}: {exc.strerror}")
        raise typer.Exit(1) from None
    except ValueError as exc:
        _say(err, f"{file} is not JSON: {exc}")
        raise typer.Exit(1) from None
    except TooDeep as exc:
        _say(err, exc.message)
        raise typer.Exit(1) from None
    try:
        dossier = validate_dossier(raw)
    except SchemaInvalid as exc:
        _say(err, f"dossier refused, nothing sent: {exc.message}")
        raise typer.Exit(1) from None
    cfg = _config(config)
    waiting = Waiting(wait, timeout)
    sent, verdict = _run(_send(cfg, lambda c: offer(c, to, dossier), waiting))
    report(
        verdict,
        f"offered transfer {dossier.transfer_id} to {to} (event {sent.id})",
        what=f"transfer {dossier.transfer_id}: the offer to {to}",
        waiting=waiting,
    )


def _answer(
    step: str, transfer_id: str, cfg: ConnectorConfig, to: str | None, waiting: Waiting, **extra: Any
) -> None:
    from connectors.transfers import send_step

    async def main() -> tuple[str, CloudEvent, Verdict | None]:
        target = to
        if target is None:
            known = await _status(cfg, lambda status: status.get(transfer_id))
            target = known["offerer"] if step in ("accepted", "rejected") else known["receiver"]
        data = {"transfer_id": transfer_id, **extra}

        async def send(c: Connector) -> CloudEvent:
            return await send_step(c, step, data, target, transfer_id)

        sent, verdict = await _send(cfg, send, waiting)
        return target, sent, verdict

    target, sent, verdict = _run(main())
    report(
        verdict,
        f"transfer {transfer_id}: sent transfer.{step} to {target} (event {sent.id})",
        what=f"transfer {transfer_id}: transfer.{step} to {target}",
        waiting=waiting,
    )


ToOpt = Annotated[str | None, typer.Option("--to", help="the other party (default: asked from the hub)")]
IdArg = Annotated[str, typer.Argument(help="the transfer id")]


@transfer_app.command("accept")
def accept_command(
    transfer_id: IdArg,
    config: ConfigOpt,
    note: NoteOpt = None,
    to: ToOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Accept an offer made to you."""
    _answer("accepted", transfer_id, _config(config), to, Waiting(wait, timeout), note=note)


@transfer_app.command("reject")
def reject_command(
    transfer_id: IdArg,
    config: ConfigOpt,
    reason: Annotated[str, typer.Option(help="not_resident, unknown_address, already_registered or other")],
    note: NoteOpt = None,
    to: ToOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Reject an offer made to you (`--reason other` needs a --note)."""
    _answer("rejected", transfer_id, _config(config), to, Waiting(wait, timeout), reason=reason, note=note)


@transfer_app.command("cancel")
def cancel_command(
    transfer_id: IdArg,
    config: ConfigOpt,
    note: NoteOpt = None,
    to: ToOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Withdraw your offer before it is answered."""
    _answer("cancelled", transfer_id, _config(config), to, Waiting(wait, timeout), note=note)


@transfer_app.command("complete")
def complete_command(
    transfer_id: IdArg,
    config: ConfigOpt,
    note: NoteOpt = None,
    to: ToOpt = None,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Close an accepted transfer: the pupil is handed over."""
    _answer("completed", transfer_id, _config(config), to, Waiting(wait, timeout), note=note)


async def _status(cfg: ConnectorConfig, call: Any) -> Any:
    """`call(TransferStatus)` over the configured hub API (no keystore or broker needed)."""
    from connectors.services import open_services
    from connectors.transfers import TransferStatus

    _token(cfg)  # says which setting is missing before anything is opened
    async with open_services(cfg, keystore=False, hub=True) as services:
        assert services.hub_api is not None
        return await call(TransferStatus(services.hub_api))


def _status_call(cfg: ConnectorConfig, call: Any) -> Any:
    return _run(_status(cfg, call))


@transfer_app.command("list")
def list_command(
    config: ConfigOpt,
    role: Annotated[str, typer.Option(help="all, offerer or receiver")] = "all",
    state: Annotated[str | None, typer.Option(help="offered, accepted, rejected, ...")] = None,
) -> None:
    """Your transfers as the hub tracks them (states and times only)."""
    cfg = _config(config)
    rows = _status_call(cfg, lambda st: st.list(role=role, state=state))
    table = Table(
        "transfer", "from", "to", "state", "offered", "deadline", title=f"transfers of {cfg.tenant}"
    )
    for r in rows:
        table.add_row(
            r["transfer_id"],
            r["offerer"],
            r["receiver"],
            _state(r),
            r["offered_at"][:16],
            r["deadline_at"][:16],
        )
    console.print(table)
    failed = [r["transfer_id"] for r in rows if r.get("delivery_failed")]
    if failed:
        _say(err, f"delivery failed: the other party could not open the latest step of {', '.join(failed)}")


def _state(transfer: Mapping[str, Any]) -> str:
    state = str(transfer["state"])
    return f"{state} (delivery failed)" if transfer.get("delivery_failed") else state


@transfer_app.command("show")
def show_command(transfer_id: IdArg, config: ConfigOpt) -> None:
    """One transfer with its timeline."""
    cfg = _config(config)
    t = _status_call(cfg, lambda st: st.get(transfer_id))
    table = Table(
        "step", "by", "for", "at", title=f"{transfer_id}: {t['offerer']} -> {t['receiver']}, {_state(t)}"
    )
    for x in t["timeline"]:
        table.add_row(x["step"], x["actor"], x["acted_for"] or "", x["at"][:19])
    console.print(table)
    if t.get("delivery_failed"):
        who = next((x["actor"] for x in reversed(t["timeline"]) if x["step"] == "delivery_failed"), "?")
        _say(
            err,
            f"delivery failed: {who} could not open the latest step of {transfer_id} (its keys may have "
            "changed); cancel it and offer again once its keys are sorted out",
        )
