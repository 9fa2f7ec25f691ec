"""Telling the hub how delivery to the case system goes (`POST /tenants/me/health`), so the hub
operator is alerted when a municipality's webhook keeps failing and sees the alert clear.

Internal to the connector (behind `inbeeld-connector run`), not SDK: see `connectors.__all__`.

Failing means: an outbox item is parked (refused for good), or attempts have failed
`park_after` times in a row on some webhook sink. Every change of that state, and every
change in the number of parked items (each parked item is reported), is sent; a report the
hub did not take (it is away) is tried again `RETRY_SECONDS` later, at the worker's next look. Counts and
an HTTP status only: nothing the case system answered, so never personal data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog

from connectors.hub_api import HubApi, HubApiError
from connectors.store import PARKED, LocalStore
from schemas.errors import InbeeldError

log = structlog.get_logger("inbeeld.connector.health")

PATH = "/tenants/me/health"
RETRY_SECONDS = 30.0  # after a report the hub did not take, wait this long before the next try


@dataclass(frozen=True)
class _State:
    failing: bool
    parked: int


class WebhookHealth:
    """One per runtime; each webhook sink's `OutboxWorker` calls `observe` as it goes."""

    def __init__(self, api: HubApi, store: LocalStore, *, failing_after: int) -> None:
        self.api = api
        self.store = store
        self.failing_after = failing_after
        self._in_row: dict[str, int] = {}
        self._status: dict[str, int | None] = {}
        self._reported: _State | None = None
        self._quiet_until = 0.0
        self.reports = 0

    async def observe(self, sink: str, *, failed: bool | None = None, status: int | None = None) -> None:
        """After an attempt (`failed` True/False, the webhook's `status`) or a look (None)."""
        if failed is True:
            self._in_row[sink] = self._in_row.get(sink, 0) + 1
            self._status[sink] = status
        elif failed is False:
            self._in_row[sink] = 0
            self._status[sink] = status
        parked = (await self.store.outbox_counts()).get(PARKED, 0)
        in_row = max(self._in_row.values(), default=0)
        state = _State(failing=parked > 0 or in_row >= self.failing_after, parked=parked)
        if state == self._reported or time.monotonic() < self._quiet_until:
            return
        last = next((s for s in self._status.values() if s is not None), None)
        body = {
            "webhook": "failing" if state.failing else "ok",
            "parked": parked,
            "failures": in_row,
            "status": last if state.failing else None,
        }
        try:
            answer = await self.api.request("POST", PATH, json=body)
        except (HubApiError, InbeeldError) as exc:
            log.warning("health.report_failed", error=exc.message, retry_in=RETRY_SECONDS)
            self._quiet_until = time.monotonic() + RETRY_SECONDS
            return
        self._reported = state
        self.reports += 1
        alert = answer.get("alert") if isinstance(answer, dict) else None
        log.info("health.reported", webhook=body["webhook"], parked=parked, failures=in_row, alert=alert)
