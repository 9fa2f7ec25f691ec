"""Stateful flows the router enforces (transfers, notices): the seam between routing and a
flow's state machine.

A `Workflow` is consulted inside the router's transaction, after the generic authorisation
(hub.routing) and payload checks:

- `check` raises `InvalidTransition` / `NotAuthorised` for an illegal step and returns the
  final recipients (a reply may only go to the party it answers). It must accept an event it
  has already applied (same source+id) and return the same recipients: after a crash the
  router sees the event again and must end in the same state.
- `record` persists the step (metadata only, never the dossier), idempotently by event id.
- `sweep(now)` returns hub events that time has made due (reminders, expiries); the router
  calls it periodically and publishes what it returns.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from hub.registry import TenantInfo
from schemas.envelope import CloudEvent


class Workflow(Protocol):
    prefixes: tuple[str, ...]

    async def check(
        self, s: AsyncSession, sender: TenantInfo, event: CloudEvent, recipients: list[str]
    ) -> list[str]: ...

    async def record(
        self, s: AsyncSession, sender: TenantInfo, event: CloudEvent, recipients: list[str]
    ) -> None: ...

    async def sweep(self, s: AsyncSession, now: datetime) -> list[CloudEvent]: ...


WORKFLOWS: list[Workflow] = []


def register(workflow: Workflow) -> Workflow:
    WORKFLOWS.append(workflow)
    return workflow


def workflow_for(short_type: str) -> Workflow | None:
    for wf in WORKFLOWS:
        if short_type.startswith(wf.prefixes):
            return wf
    return None


# Each flow's module registers its workflow on import; add yours here.
_MODULES: tuple[str, ...] = (
    "hub.workflows.delivery_failures",
    "hub.workflows.notices",
    "hub.workflows.receipts",
    "hub.workflows.templates",
    "hub.workflows.transfers",
)


def load_all() -> list[Workflow]:
    for name in _MODULES:
        importlib.import_module(name)
    return WORKFLOWS
