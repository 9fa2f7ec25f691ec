"""Pupil transfers from the connector's side: SDK helpers (the CLI is `connectors.cli.transfers`).

SDK (a `Connector` with a `Sealer`: every transfer event is sealed)::

    from connectors import transfers
    sent = await transfers.offer(connector, "GM0599", dossier)      # validated before anything
    await transfers.accept(connector, "tr-GM0518-...", to="GM0518")
    await transfers.reject(connector, transfer_id, to=offerer, reason="not_resident")
    await transfers.complete(connector, transfer_id, to=receiver)   # after an accept
    await transfers.cancel(connector, transfer_id, to=receiver)     # before an answer
    transfers.check_subject(message.event, message.payload)         # on receipt

    async with HubApi(hub_url, token) as api:                        # the hub's metadata
        status = transfers.TransferStatus(api)
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

Every sending command waits for the hub's verdict (`connectors.verdict`; `--no-wait`,
`--timeout SECONDS`): a refused step prints the hub's reason and detail and exits 1.
A dossier is validated before anything is sent or even connected: a bad one prints the
field and why (never the value) and exits 1. Exit 2: the configuration lacks what transfers
need ([keystore] and [hub]).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

from connectors.client import Connector
from connectors.hub_api import HubApi
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError, SchemaInvalid
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
    "send_step",
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


async def send_step(
    connector: Connector, step: str, data: Mapping[str, Any], to: str, transfer_id: str
) -> CloudEvent:
    """Send the transfer event `PREFIX + step` (e.g. "accepted") to `to`, validated first."""
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
    return await send_step(connector, "offered", payload.model_dump(mode="json"), to, payload.transfer_id)


async def accept(connector: Connector, transfer_id: str, *, to: str, note: str | None = None) -> CloudEvent:
    return await send_step(connector, "accepted", {"transfer_id": transfer_id, "note": note}, to, transfer_id)


async def reject(
    connector: Connector, transfer_id: str, *, to: str, reason: RejectReason, note: str | None = None
) -> CloudEvent:
    data = {"transfer_id": transfer_id, "reason": reason, "note": note}
    return await send_step(connector, "rejected", data, to, transfer_id)


async def complete(connector: Connector, transfer_id: str, *, to: str, note: str | None = None) -> CloudEvent:
    return await send_step(
        connector, "completed", {"transfer_id": transfer_id, "note": note}, to, transfer_id
    )


async def cancel(connector: Connector, transfer_id: str, *, to: str, note: str | None = None) -> CloudEvent:
    return await send_step(
        connector, "cancelled", {"transfer_id": transfer_id, "note": note}, to, transfer_id
    )


def check_subject(event: CloudEvent, payload: Payload) -> None:
    """A received transfer event's `subject` (what the hub tracked) must be its payload's id."""
    transfer_id = getattr(payload, "transfer_id", None)
    if event.type.startswith(PREFIX) and transfer_id != event.subject:
        raise SchemaInvalid("the envelope's subject is not the payload's transfer_id", field="subject")


class TransferStatus:
    """The hub's transfer metadata for this tenant (`GET /transfers`, `/transfers/{id}`).
    `NotFound` for a transfer the hub does not know (or that is not ours); other refusals as
    `connectors.hub_api` maps them."""

    def __init__(self, api: HubApi) -> None:
        self.api = api

    async def list(self, *, role: str = "all", state: str | None = None) -> list[dict[str, Any]]:
        params = {"role": role, **({"state": state} if state else {})}
        result: list[dict[str, Any]] = await self.api.get("/transfers", params)
        return result

    async def get(self, transfer_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.api.get(f"/transfers/{transfer_id}")
        return result
