"""Stateful flows the router enforces (transfers, notices): the seam between routing and a
flow's state machine.

A `Workflow` is consulted inside the router's transaction, after the generic authorisation
(hub.routing) and the verification of the event (`hub.keys.KeyCache.check`). It is given that
`hub.verified.VerifiedEvent` — envelope, sender and validated payload (or the `Sealed` marker)
— and reads the payload from it, never from the event's `data`:

- `check` raises `InvalidTransition` / `NotAuthorised` for an illegal step and returns the
  final recipients (a reply may only go to the party it answers). It must accept an event it
  has already applied (same source+id) and return the same recipients: after a crash the
  router sees the event again and must end in the same state.
- `record` persists the step (metadata only, never the dossier), idempotently by event id.
- `sweep(now)` returns hub events that time has made due (reminders, expiries); the router
  calls it periodically and publishes what it returns.
- optionally `prepare(s, events)` (`Prepares`): called once per router batch before any of its
  events is checked, to read what the batch needs in one statement per table instead of one
  per event (`TransferWorkflow` reads and locks the batch's transfers).

The router is given its workflows (`Router(..., workflows=...)`); `default_workflows` builds
the hub's own, each with the settings it needs. Add yours there.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from sqlalchemy.ext.asyncio import AsyncSession

from hub.config import Settings
from hub.tenants import TenantInfo
from hub.verified import VerifiedEvent
from hub.workflows.delivery_failures import DeliveryFailures
from hub.workflows.notices import NoticeWorkflow
from hub.workflows.receipts import Receipts
from hub.workflows.templates import TemplateWorkflow
from hub.workflows.transfers import TransferWorkflow
from schemas.envelope import CloudEvent


class Workflow(Protocol):
    prefixes: tuple[str, ...]

    async def check(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> list[str]: ...

    async def record(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> None: ...

    async def sweep(self, s: AsyncSession, now: datetime) -> list[CloudEvent]: ...


@runtime_checkable
class Prepares(Protocol):
    async def prepare(self, s: AsyncSession, events: Sequence[CloudEvent]) -> None: ...


def default_workflows(settings: Settings) -> list[Workflow]:
    """The hub's workflows, in the order the router consults them and sweeps them."""
    transfers = TransferWorkflow(settings)
    return [transfers, DeliveryFailures(transfers), NoticeWorkflow(settings), Receipts(), TemplateWorkflow()]


def workflow_for(workflows: list[Workflow], short_type: str) -> Workflow | None:
    for wf in workflows:
        if short_type.startswith(wf.prefixes):
            return wf
    return None
