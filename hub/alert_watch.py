"""The edge that evaluates and delivers alerts (`hub.alerts` holds the rules).

Runs in the API process (`inbeeld serve`, started by the app's lifespan): every
`INBEELD_ALERT_INTERVAL` seconds it samples every inbox from the RabbitMQ management API,
updates the alerts in the store, then delivers each raising and clearing it claimed:

* a POST to the operator webhook (`INBEELD_ALERT_WEBHOOK_URL`), signed like the connector's
  webhooks: `X-Inbeeld-Signature: sha256=<hex>`, HMAC-SHA256 under
  `INBEELD_ALERT_WEBHOOK_SECRET` over `<X-Inbeeld-Timestamp>.<body>`, and `X-Inbeeld-Event-Id`
  to drop a repeat. The body is the `hub.alert` CloudEvent (JSON). A failed post (unreachable,
  non-2xx) is tried again at the next evaluation.
* a `hub.alert` event to the tenant's inbox (recorded in the ledger with its sequence first;
  its id derives from the alert and the transition, so a repeat is a duplicate).

Several API replicas may run this side by side: the store decides who raises and who
delivers (`alerts.claim`). A report from a connector (`POST /tenants/me/health`) wakes the
watch, so it is delivered within moments rather than at the next interval.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import timedelta
from typing import Any

import httpx
import structlog

from hub import alerts, publisher, registry
from hub.alerts import Claimed, InboxState, Thresholds
from hub.broker.management import ManagementError
from hub.config import Settings
from hub.errors import ServiceUnavailable
from hub.publisher import HubPublisher
from hub.services import management
from hub.store.db import Database
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError

log = structlog.get_logger("inbeeld.alert_watch")

SIGNATURE_HEADER = "X-Inbeeld-Signature"
TIMESTAMP_HEADER = "X-Inbeeld-Timestamp"
EVENT_ID_HEADER = "X-Inbeeld-Event-Id"
WEBHOOK_TIMEOUT = 10.0


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The connector's webhook signature scheme (docs/webhooks.md), for the operator webhook."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def alert_event(settings: Settings, item: Claimed) -> CloudEvent:
    data: dict[str, Any] = {
        "alert_id": item.id,
        "tenant": item.tenant,
        "kind": item.kind,
        "state": item.transition,
        "detail": item.detail,
        "since": item.since.isoformat(),
        "raised_at": item.raised_at.isoformat(),
    }
    if item.cleared_at is not None:
        data["cleared_at"] = item.cleared_at.isoformat()
    return publisher.hub_event(
        settings,
        "hub.alert",
        data,
        [item.tenant],
        about=f"{item.id}:{item.transition}",
        subject=f"alert-{item.id}",
    )


class AlertWatch:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.thresholds = Thresholds(
            offline=timedelta(hours=settings.alert_offline_hours),
            backlog=timedelta(hours=settings.alert_backlog_hours),
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT)
        self.evaluations = 0

    def start(self) -> None:
        if self.settings.alert_interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbeeld-alert-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._http.aclose()

    def wake(self) -> None:
        """Deliver what is due now (a connector just reported)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.evaluate()
            except Exception as exc:  # the watch must outlive a bad moment of the store or broker
                log.exception("alerts.evaluation_failed", error=type(exc).__name__)
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.alert_interval)
            except TimeoutError:
                pass
            self._wake.clear()

    async def evaluate(self) -> None:
        """One look at the inboxes, then deliver what was raised or cleared."""
        inboxes = await self._inboxes()
        if inboxes is not None:
            async with self.db.session() as s, s.begin():
                await alerts.observe(s, inboxes, self.thresholds)
        await self.deliver()
        self.evaluations += 1

    async def _inboxes(self) -> list[InboxState] | None:
        async with self.db.session() as s:
            tenants = [t for t in await registry.list_tenants(s) if t.active and t.inbox]
        try:
            async with management(self.settings) as mgmt:
                queues = {q.get("name"): q for q in await mgmt.list_queues(self.settings.vhost)}
        except (ServiceUnavailable, ManagementError) as exc:
            log.warning("alerts.broker_unknown", error=exc.message)
            return None  # no figures: leave the inbox alerts as they are
        states = []
        for t in tenants:
            q = queues.get(t.inbox)
            if q is None:
                continue
            stats = q.get("message_stats") or {}
            limit = (q.get("arguments") or {}).get("x-max-length") or self.settings.inbox_max_length
            states.append(
                InboxState(
                    tenant=t.code,
                    messages=int(q.get("messages") or 0),
                    consumers=int(q.get("consumers") or 0),
                    acked=int(stats.get("ack") or 0),
                    limit=int(limit),
                )
            )
        return states

    async def deliver(self) -> int:
        """Send every raising and clearing this process claims; returns how many went out."""
        async with self.db.session() as s, s.begin():
            claimed = await alerts.claim(s)
        sent = 0
        for item in claimed:
            event = alert_event(self.settings, item)
            delivered = await self._post(event)
            await self._tell_tenant(event)
            if delivered:
                sent += 1
                log.info("alerts.delivered", alert=item.id, kind=item.kind, transition=item.transition)
            else:
                async with self.db.session() as s, s.begin():
                    await alerts.unclaim(s, item)
        return sent

    async def _post(self, event: CloudEvent) -> bool:
        url, secret = self.settings.alert_webhook_url, self.settings.alert_webhook_secret
        if not url or not secret:
            return True
        body = event.to_bytes()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret.encode(), timestamp, body),
        }
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("alerts.webhook_unreachable", error=type(exc).__name__)
            return False
        if not 200 <= response.status_code < 300:
            log.warning("alerts.webhook_refused", status=response.status_code)
            return False
        return True

    async def _tell_tenant(self, event: CloudEvent) -> None:
        try:
            async with self.db.session() as s, s.begin():
                sequences = await publisher.record(s, event)
            async with HubPublisher.open(self.settings) as out:
                await out.announce(self.db, [(event, sequences)])
        except InbeeldError as exc:  # the tenant hears of it later, or from the operator
            log.warning("alerts.tenant_not_told", event_id=event.id, reason=exc.reason)
