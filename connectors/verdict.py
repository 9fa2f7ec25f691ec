"""The hub's verdict on an event we sent: routed, rejected (and why), or not given yet.

A command that sends (`transfer accept`, `notice send`, `templates publish`, ...) cannot read
the `hub.rejected` from the tenant's inbox: the running connector is its one consumer. It
asks the hub instead (`GET /ledger/{id}/verdict`, through `HubApi`), polling with a short
backoff until the hub has decided or `timeout` seconds have passed:

    verdict = await await_verdict(services.hub_api, event.id, timeout=30)
    if verdict.rejected: ...   # verdict.reason, verdict.detail: what the hub.rejected says

Waiting is the default for every sending command (`--no-wait` skips it); this module holds
the waiting, the commands only report it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from connectors.hub_api import HubApi

__all__ = [
    "DEFAULT_TIMEOUT",
    "PENDING",
    "REJECTED",
    "ROUTED",
    "Verdict",
    "await_verdict",
    "recipients",
    "verdict_of",
]

DEFAULT_TIMEOUT = 30.0
PENDING, ROUTED, REJECTED = "pending", "routed", "rejected"
_FIRST_PAUSE = 0.1
_LONGEST_PAUSE = 1.0


@dataclass(frozen=True)
class Verdict:
    event_id: str
    status: str  # pending (no verdict within the timeout) | routed | rejected
    reason: str | None = None
    detail: str | None = None

    @property
    def rejected(self) -> bool:
        return self.status == REJECTED

    @property
    def routed(self) -> bool:
        return self.status == ROUTED

    def describe(self) -> str:
        """One line for a person: `refused by the hub: <reason>: <detail>`."""
        if self.rejected:
            detail = f": {self.detail}" if self.detail else ""
            return f"refused by the hub: {self.reason or 'unknown'}{detail}"
        if self.routed:
            return "routed by the hub"
        return "no verdict from the hub yet"


async def verdict_of(api: HubApi, event_id: str) -> Verdict:
    """The hub's verdict now (`pending` if it has not decided)."""
    answer: Any = await api.get(f"/ledger/{quote(event_id, safe='')}/verdict")
    return Verdict(
        event_id=str(answer.get("event_id", event_id)),
        status=str(answer.get("status", PENDING)),
        reason=answer.get("reason"),
        detail=answer.get("detail"),
    )


async def await_verdict(
    api: HubApi,
    event_id: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict:
    """Ask until the hub has routed or rejected `event_id`, pausing 0.1 s, doubling up to 1 s;
    after `timeout` seconds the last answer (`pending`). An unreachable hub raises
    `HubApiError` (the event was sent: only the verdict is unknown)."""
    deadline = clock() + timeout
    pause = _FIRST_PAUSE
    while True:
        verdict = await verdict_of(api, event_id)
        left = deadline - clock()
        if verdict.status != PENDING or left <= 0:
            return verdict
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, _LONGEST_PAUSE)


async def recipients(api: HubApi, event_id: str) -> list[str]:
    """The tenants the hub routed `event_id` to (its ledger entry), e.g. a template's subscribers."""
    item: Any = await api.get(f"/ledger/{quote(event_id, safe='')}")
    return [str(r) for r in item.get("recipients", [])]
