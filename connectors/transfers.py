"""Pupil transfers from the connector's side: SDK helpers and `inbeeld-connector transfer`.

SDK (a `Connector` with a `Sealer`: every transfer event is sealed)::

    from connectors import transfers
    sent = await transfers.offer(connector, "GM0599", dossier)      # validated before anything
    await transfers.accept(connector, "tr-GM0518-...", to="GM0518")
    await transfers.reject(connector, transfer_id, to=offerer, reason="not_resident")
    await transfers.complete(connector, transfer_id, to=receiver)   # after an accept
    await transfers.cancel(connector, transfer_id, to=receiver)     # before an answer
    transfers.check_subject(message.event, message.payload)         # on receipt

    async with transfers.TransferStatus(hub_url, token) as status:  # the hub's metadata
        await status.list(role="receiver", state="offered")
        await status.get(transfer_id)                                  # with its timeline

The transfer id travels in the envelope's `subject` (the hub tracks the state on it without
reading the sealed payload) and in the payload; `check_subject` refuses a received event
whose two differ. The hub answers a refused step with `hub.rejected` (`invalid_transition`,
`not_authorised`, ...) in the inbox.

CLI::

    inbeeld-connector transfer offer --to GM0599 --file dossier.json --config FILE
    inbeeld-connector transfer accept|cancel|complete ID [--note TEXT] --config FILE
    inbeeld-connector transfer reject ID --reason not_resident [--note TEXT] --config FILE
    inbeeld-connector transfer list [--role offerer|receiver] [--state offered] --config FILE
    inbeeld-connector transfer show ID --config FILE   # says so when delivery failed

A dossier is validated before anything is sent or even connected: a bad one prints the
field and why (never the value) and exits 1. Exit 2: the configuration lacks what transfers
need ([keystore] and [hub]).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal

import httpx
import typer
from rich.console import Console
from rich.table import Table

from connectors.client import Connector, ConnectorError
from connectors.config import ConfigError, ConnectorConfig, load_config
from schemas import nesting
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError, NotFound, SchemaInvalid, TooDeep
from schemas.events import Payload, TransferOffered, spec_for
from schemas.validation import validate_payload

__all__ = [
    "TransferError",
    "TransferStatus",
    "accept",
    "cancel",
    "check_subject",
    "complete",
    "new_transfer_id",
    "offer",
    "reject",
    "transfer_app",
    "validate_dossier",
]

PREFIX = "nl.leerplicht.transfer."
RejectReason = Literal["not_resident", "unknown_address", "already_registered", "other"]


class TransferError(InbeeldError):
    reason = "transfer_error"


def new_transfer_id(tenant: str) -> str:
    """A transfer id unique across the hub: `tr-<tenant>-<random>`."""
    return f"tr-{tenant}-{uuid.uuid4().hex[:16]}"


def validate_dossier(dossier: Any) -> TransferOffered:
    """The dossier as a `TransferOffered`; `SchemaInvalid` naming the first bad field."""
    payload = validate_payload(PREFIX + "offered", dossier)
    assert isinstance(payload, TransferOffered)
    return payload


async def _send(
    connector: Connector, step: str, data: Mapping[str, Any], to: str, transfer_id: str
) -> CloudEvent:
    event_type = PREFIX + step
    payload = validate_payload(event_type, dict(data))  # nothing invalid leaves, sealed or not
    if connector.sealer is None and spec_for(event_type).protection != "none":
        raise TransferError(f"{event_type} must be sealed: give the connector a sealer")
    event = connector.event(
        event_type, payload.model_dump(mode="json", exclude_none=True), [to], subject=transfer_id
    )
    return await connector.publish(event)


async def offer(connector: Connector, to: str, dossier: Mapping[str, Any] | TransferOffered) -> CloudEvent:
    """Offer the dossier to `to`. Validated first: `SchemaInvalid` and nothing sent if it is bad."""
    raw = dossier.model_dump(mode="json") if isinstance(dossier, Payload) else dossier
    payload = validate_dossier(raw)
    return await _send(connector, "offered", payload.model_dump(mode="json"), to, payload.transfer_id)


async def accept(connector: Connector, transfer_id: str, *, to: str, note: str | None = None) -> CloudEvent:
    return await _send(connector, "accepted", {"transfer_id": transfer_id, "note": note}, to, transfer_id)


async def reject(
    connector: Connector, transfer_id: str, *, to: str, reason: RejectReason, note: str | None = None
) -> CloudEvent:
    data = {"transfer_id": transfer_id, "reason": reason, "note": note}
    return await _send(connector, "rejected", data, to, transfer_id)


async def complete(connector: Connector, transfer_id: str, *, to: str, note: str | None = None) -> CloudEvent:
    return await _send(connector, "completed", {"transfer_id": transfer_id, "note": note}, to, transfer_id)


async def cancel(connector: Connector, transfer_id: str, *, to: str, note: str | None = None) -> CloudEvent:
    return await _send(connector, "cancelled", {"transfer_id": transfer_id, "note": note}, to, transfer_id)


def check_subject(event: CloudEvent, payload: Payload) -> None:
    """A received transfer event's `subject` (what the hub tracked) must be its payload's id."""
    transfer_id = getattr(payload, "transfer_id", None)
    if event.type.startswith(PREFIX) and transfer_id != event.subject:
        raise SchemaInvalid("the envelope's subject is not the payload's transfer_id", field="subject")


class TransferStatus:
    """The hub's transfer metadata for this tenant (`GET /transfers`, `/transfers/{id}`)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> TransferStatus:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise TransferError(f"cannot reach the hub ({type(exc).__name__})") from None
        if response.status_code == 404:
            raise NotFound(f"the hub knows no transfer of yours at {path}")
        if response.status_code >= 400:
            raise TransferError(f"the hub refused GET {path}: HTTP {response.status_code}")
        try:
            return nesting.loads(response.content, what="the hub's answer")
        except ValueError:
            raise TransferError(f"the hub's answer to GET {path} is not JSON") from None

    async def list(self, *, role: str = "all", state: str | None = None) -> list[dict[str, Any]]:
        params = {"role": role, **({"state": state} if state else {})}
        result: list[dict[str, Any]] = await self._get("/transfers", params)
        return result

    async def get(self, transfer_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._get(f"/transfers/{transfer_id}")
        return result


# -- the CLI ------------------------------------------------------------------------------------

transfer_app = typer.Typer(help="Pupil transfers: offer, answer, close, list.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="the connector's TOML config")]
NoteOpt = Annotated[str | None, typer.Option("--note", help="a short note for the other party")]


def _say(console_: Console, text: str) -> None:
    console_.print(text, markup=False, highlight=False, soft_wrap=True)


def _config(path: Path) -> ConnectorConfig:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        _say(err, f"config error: {exc.message}")
        raise typer.Exit(2) from None
    if cfg.keystore is None or cfg.hub is None:
        _say(err, "config error: transfers are sealed: configure [keystore] and [hub]")
        raise typer.Exit(2)
    return cfg


def _token(cfg: ConnectorConfig) -> str:
    assert cfg.hub is not None
    try:
        token = cfg.hub.resolved_token()
    except ConfigError as exc:
        _say(err, f"config error: {exc.message}")
        raise typer.Exit(2) from None
    if token is None:
        _say(err, "config error: hub.token_env: the hub API token is needed for transfers")
        raise typer.Exit(2)
    return token


async def _with_connector(cfg: ConnectorConfig, action: Any) -> Any:
    """Run `action(connector)` with a sealing connector built from the config."""
    from connectors.directory import Directory
    from connectors.runtime import open_keystore
    from connectors.sealing import Sealer

    assert cfg.hub is not None
    keystore = open_keystore(cfg)
    assert keystore is not None
    async with Directory(cfg.hub.url, _token(cfg)) as directory:
        sealer = Sealer(keystore, directory, cfg.tenant)
        connector = Connector(
            cfg.tenant,
            cfg.broker.amqp_url(),
            system=cfg.system,
            oin=cfg.oin,
            publish_timeout=cfg.broker.publish_timeout,
            publish_deadline=30,
            sealer=sealer,
        )
        async with connector:
            return await action(connector)


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        _say(err, f"config error: {exc.message}")
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
) -> None:
    """Offer a pupil's dossier to another municipality (sealed to it)."""
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
    sent: CloudEvent = _run(_with_connector(cfg, lambda c: offer(c, to, dossier)))
    _say(console, f"offered transfer {dossier.transfer_id} to {to} (event {sent.id})")


def _answer(step: str, transfer_id: str, cfg: ConnectorConfig, to: str | None, **extra: Any) -> None:
    async def main() -> CloudEvent:
        target = to
        if target is None:
            assert cfg.hub is not None
            async with TransferStatus(cfg.hub.url, _token(cfg)) as status:
                known = await status.get(transfer_id)
            target = known["offerer"] if step in ("accepted", "rejected") else known["receiver"]
        data = {"transfer_id": transfer_id, **extra}

        async def send(c: Connector) -> CloudEvent:
            return await _send(c, step, data, target, transfer_id)

        result: CloudEvent = await _with_connector(cfg, send)
        _say(console, f"transfer {transfer_id}: sent transfer.{step} to {target} (event {result.id})")
        return result

    _run(main())


ToOpt = Annotated[str | None, typer.Option("--to", help="the other party (default: asked from the hub)")]
IdArg = Annotated[str, typer.Argument(help="the transfer id")]


@transfer_app.command("accept")
def accept_command(transfer_id: IdArg, config: ConfigOpt, note: NoteOpt = None, to: ToOpt = None) -> None:
    """Accept an offer made to you."""
    _answer("accepted", transfer_id, _config(config), to, note=note)


@transfer_app.command("reject")
def reject_command(
    transfer_id: IdArg,
    config: ConfigOpt,
    reason: Annotated[str, typer.Option(help="not_resident, unknown_address, already_registered or other")],
    note: NoteOpt = None,
    to: ToOpt = None,
) -> None:
    """Reject an offer made to you (`--reason other` needs a --note)."""
    _answer("rejected", transfer_id, _config(config), to, reason=reason, note=note)


@transfer_app.command("cancel")
def cancel_command(transfer_id: IdArg, config: ConfigOpt, note: NoteOpt = None, to: ToOpt = None) -> None:
    """Withdraw your offer before it is answered."""
    _answer("cancelled", transfer_id, _config(config), to, note=note)


@transfer_app.command("complete")
def complete_command(transfer_id: IdArg, config: ConfigOpt, note: NoteOpt = None, to: ToOpt = None) -> None:
    """Close an accepted transfer: the pupil is handed over."""
    _answer("completed", transfer_id, _config(config), to, note=note)


def _status_call(cfg: ConnectorConfig, call: Any) -> Any:
    async def main() -> Any:
        assert cfg.hub is not None
        async with TransferStatus(cfg.hub.url, _token(cfg)) as status:
            return await call(status)

    return _run(main())


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
