"""Gauges the API's /metrics computes when scraped (a prometheus-client collector), not per
event: dead letters waiting, the audit chain's length, and the depth of each tenant's inbox
and of the hub's own queues, sampled from the RabbitMQ management API.

    inbeeld_dead_letters_waiting{reason}       dead letters kept and not yet replayed
    inbeeld_audit_chain_records                 records in the hub's audit chains (all of them)
    inbeeld_inbox_messages{tenant}              messages waiting in a tenant's inbox
    inbeeld_hub_queue_messages{queue}           messages in inbeeld.router and inbeeld.dead
    inbeeld_broker_management_up                1 if the last sample of the queues succeeded
    inbeeld_inbox_consumers{tenant}             consumers of a tenant's inbox (0: no connector)
    inbeeld_alerts_active{kind}                 alerts raised and not cleared (hub.alerts)
    inbeeld_audit_chain_intact                  1 if the last verification found every chain whole
    inbeeld_audit_chain_verified_timestamp_seconds  when the chain was last verified

The store is asked on every scrape (two indexed queries); the management API at most every
`queue_ttl` seconds, whatever the number of scrapers; the audit chain is verified at most every
`chain_ttl` seconds (it reads every record)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import structlog
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from hub import alerts, audit
from hub.broker.management import ManagementError
from hub.config import Settings
from hub.errors import ServiceUnavailable
from hub.services import management
from hub.store.db import Database
from hub.store.models import AuditRecord, DeadLetter, Tenant
from schemas.names import DEAD, ROUTER_QUEUE

log = structlog.get_logger("inbeeld.metrics")

QUEUE_TTL = 15.0  # seconds a sample of the queue depths is reused
CHAIN_TTL = 300.0  # seconds a verification of the audit chain is reused


@dataclass
class Sample:
    dead_letters: dict[str, int] = field(default_factory=dict)
    audit_records: int = 0
    inboxes: dict[str, int] = field(default_factory=dict)
    hub_queues: dict[str, int] = field(default_factory=dict)
    management_up: bool = False
    consumers: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    chain_intact: bool = True
    chain_verified_at: float = 0.0


class HubGauges(Collector):
    """Call `refresh()` before each exposition; `collect()` yields the last sample."""

    def __init__(
        self, settings: Settings, db: Database, queue_ttl: float = QUEUE_TTL, chain_ttl: float = CHAIN_TTL
    ) -> None:
        self.settings = settings
        self.db = db
        self.queue_ttl = queue_ttl
        self.chain_ttl = chain_ttl
        self._chain_at = float("-inf")
        self.sample = Sample()
        self._queues_at = float("-inf")

    async def refresh(self) -> None:
        async with self.db.session() as s:
            rows = await s.execute(
                select(DeadLetter.reason, func.count())
                .where(DeadLetter.replayed_at.is_(None))
                .group_by(DeadLetter.reason)
            )
            self.sample.dead_letters = {reason: int(n) for reason, n in rows.all()}
            self.sample.audit_records = int(
                await s.scalar(select(func.count()).select_from(AuditRecord)) or 0
            )
            self.sample.alerts = await alerts.counts(s)
            if time.monotonic() - self._chain_at >= self.chain_ttl:
                report = await audit.verify(s)
                self.sample.chain_intact = report.intact
                self.sample.chain_verified_at = time.time()
                self._chain_at = time.monotonic()
            if time.monotonic() - self._queues_at >= self.queue_ttl:
                tenants = await s.execute(select(Tenant.inbox, Tenant.code).where(Tenant.inbox.is_not(None)))
                inboxes = {inbox: code for inbox, code in tenants.all()}
                await self._sample_queues(inboxes)

    async def _sample_queues(self, inboxes: dict[str | None, str]) -> None:
        try:
            async with management(self.settings) as mgmt:
                queues = await mgmt.list_queues(self.settings.vhost)
        except (ServiceUnavailable, ManagementError) as exc:
            log.warning("metrics.queues_unavailable", error=exc.message)
            self.sample.management_up = False
            return
        depths = {q["name"]: int(q.get("messages") or 0) for q in queues}
        consumers = {q["name"]: int(q.get("consumers") or 0) for q in queues}
        self.sample.inboxes = {code: depths.get(name, 0) for name, code in inboxes.items() if name in depths}
        self.sample.consumers = {code: consumers[name] for name, code in inboxes.items() if name in consumers}
        self.sample.hub_queues = {name: depths[name] for name in (ROUTER_QUEUE, DEAD) if name in depths}
        self.sample.management_up = True
        self._queues_at = time.monotonic()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        sample = self.sample
        dead = GaugeMetricFamily(
            "inbeeld_dead_letters_waiting", "Dead letters kept and not yet replayed.", labels=["reason"]
        )
        for reason, n in sorted(sample.dead_letters.items()):
            dead.add_metric([reason], n)
        yield dead
        yield GaugeMetricFamily(
            "inbeeld_audit_chain_records",
            "Records in the hub's audit chains (all of them).",
            value=sample.audit_records,
        )
        inbox = GaugeMetricFamily(
            "inbeeld_inbox_messages",
            "Messages waiting in a tenant's inbox (sampled from the management API).",
            labels=["tenant"],
        )
        for code, n in sorted(sample.inboxes.items()):
            inbox.add_metric([code], n)
        yield inbox
        hub = GaugeMetricFamily(
            "inbeeld_hub_queue_messages",
            "Messages in the hub's router and dead-letter queues (sampled from the management API).",
            labels=["queue"],
        )
        for name, n in sorted(sample.hub_queues.items()):
            hub.add_metric([name], n)
        yield hub
        yield GaugeMetricFamily(
            "inbeeld_broker_management_up",
            "1 if the last sample of the queue depths from the management API succeeded.",
            value=int(sample.management_up),
        )
        readers = GaugeMetricFamily(
            "inbeeld_inbox_consumers",
            "Consumers of a tenant's inbox: 0 means no connector is reading (management API sample).",
            labels=["tenant"],
        )
        for code, n in sorted(sample.consumers.items()):
            readers.add_metric([code], n)
        yield readers
        active = GaugeMetricFamily(
            "inbeeld_alerts_active", "Alerts raised and not cleared, by kind (hub.alerts).", labels=["kind"]
        )
        for kind, n in sorted(sample.alerts.items()):
            active.add_metric([kind], n)
        yield active
        yield GaugeMetricFamily(
            "inbeeld_audit_chain_intact",
            "1 if the last verification of the audit hash chains found every one whole, 0 if one is broken.",
            value=int(sample.chain_intact),
        )
        yield GaugeMetricFamily(
            "inbeeld_audit_chain_verified_timestamp_seconds",
            "When the audit chain was last verified (Unix time).",
            value=sample.chain_verified_at,
        )
