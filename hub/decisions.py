"""What the router decides for each event, with the store and without AMQP.

    admit          before anything is recorded: the source belongs to the sender, no BSN in
                   the envelope, the sender within its rate (a refusal occupies nothing)
    decide_batch   in the batch's one transaction: ledger (dedupe), authorise (hub.routing),
                   verify once (hub.keys -> hub.verified.VerifiedEvent), the workflow's check
                   and record, sequences, status and audit
    rejection /    the hub events a decision may produce (`hub.rejected`, `hub.receipt`)
    hub_receipt

The router (`hub.router`) brings the messages in, hands the admitted events here and
publishes what comes back; the decision to ack, retry or dead-letter stays there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit, ledger, metrics, publisher
from hub.config import Settings
from hub.dead_letters import envelope_attributes
from hub.errors import Transient
from hub.keys import KeyCache
from hub.rate_limit import RateLimiter
from hub.routing import Directory, check_source, resolve_recipients
from hub.tenants import TenantInfo
from hub.workflows import Prepares, Workflow, workflow_for
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError, NotAuthorised, PersonalDataInEnvelope
from schemas.events import HubReceipt, HubRejected, Receipt, spec_for
from schemas.names import RECEIPT_TYPE
from schemas.processing_log import processing_activity_id
from schemas.redaction import bsn_in_attributes
from schemas.tracing import Span

log = structlog.get_logger("inbeeld.router")

ACTOR = "hub-router"

# An admitted event on its way to a decision: (sender, event, body size, redelivered).
Admitted = tuple[TenantInfo, CloudEvent, int, bool]


@dataclass
class Decision:
    """What was decided for one event: what to publish to whom."""

    sender: TenantInfo
    original: CloudEvent
    outgoing: CloudEvent
    allocation: ledger.Allocation
    rejection: CloudEvent | None = None
    ledger_id: int = 0
    seqs: dict[str, int] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)
    repeat: bool = False  # a redelivered event routed before: publish the stored copies again
    reason: str = ""  # the rejection's reason code
    span: tuple[str, str] | None = None  # (trace id, span id) of the router's decision
    decide_span: Span | None = None  # that span itself: the parent of its publish and confirm


def count_outcomes(admitted: Sequence[Admitted], decisions: Sequence[Decision]) -> None:
    """Count what a committed batch decided for each admitted event (`hub.metrics`): routed,
    repeated, rejected with its reason, or a duplicate (no decision)."""
    decided = {id(d.original) for d in decisions}
    for d in decisions:
        if d.rejection is not None:
            metrics.count_event(d.original.type, metrics.REJECTED, d.reason)
        else:
            metrics.count_event(d.original.type, metrics.REPEATED if d.repeat else metrics.ROUTED)
    for _, event, _, _ in admitted:
        if id(event) not in decided:
            metrics.count_event(event.type, metrics.DUPLICATE)


def audit_entry(
    d: Decision, verb: str = "route", outcome: str = "routed", recipients: Sequence[str] | None = None
) -> audit.Entry:
    return audit.Entry(
        activity=f"{verb} {d.original.short_type}"[:64],
        actor=ACTOR,
        outcome=outcome,
        sender=d.sender.code,
        recipients=tuple(d.seqs if recipients is None else recipients),
        subject_ref=d.original.id,
        traceparent=d.original.traceparent,
        span=d.span,
        processing_activity_id=processing_activity_id(d.original.type),
    )


class Decider:
    def __init__(
        self,
        settings: Settings,
        directory: Directory,
        keys: KeyCache,
        workflows: list[Workflow],
        limiter: RateLimiter,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.keys = keys
        self.workflows = workflows
        self.limiter = limiter

    def admit(self, sender: TenantInfo, event: CloudEvent, replay: bool) -> None:
        """What is checked before an event is recorded, so a refused one occupies nothing in
        the ledger: its source belongs to the sender, its envelope holds no BSN (the ledger
        keeps the envelope in the clear), and the sender is within its rate."""
        check_source(sender, event)
        name = bsn_in_attributes(envelope_attributes(event))
        if name is not None:
            raise PersonalDataInEnvelope(
                f"the envelope attribute {name} holds what looks like a BSN; personal data "
                "belongs in the sealed data only",
                field=name,
            )
        if not replay:
            self.limiter.take(sender.code)

    async def decide_batch(
        self,
        s: AsyncSession,
        admitted: Sequence[Admitted],
        spans: Sequence[tuple[str, str] | None] | None = None,
    ) -> list[Decision]:
        """Record, decide, sequence and audit a batch inside the caller's transaction. `spans`
        (aligned with `admitted`): the ids of the router's span for each, for the audit."""
        recorded = await ledger.record_many(
            s, [(e, t.code, n) for t, e, n, _ in admitted], status=ledger.ROUTED
        )
        events = [e for _, e, _, _ in admitted]
        for wf in self.workflows:
            if isinstance(wf, Prepares):
                await wf.prepare(s, events)
        decisions: list[Decision] = []
        ids = list(spans) if spans is not None else [None] * len(admitted)
        for (sender, event, _, redelivered), rec, span in zip(admitted, recorded, ids, strict=True):
            decision = await self.decide(s, sender, event, rec, redelivered, span=span)
            if decision is not None:
                decision.span = span
                decisions.append(decision)
        # Sequences for the whole batch at once, in batch order, so every inbox receives
        # increasing numbers when the copies are published in the same order.
        await ledger.assign_many(s, [d.allocation for d in decisions])
        for d in decisions:
            d.seqs = d.allocation.seqs
        # Recorded as routed before the copies are confirmed (those rejected were marked in
        # `decide`): the message is acked only after every confirm, and a redelivered routed
        # event publishes its stored copies again.
        routed = [d for d in decisions if d.rejection is None and not d.repeat]
        # Last, just before the commit: the chains' locks are held for as short as can be.
        await audit.append_many(s, [audit_entry(d) for d in routed])
        return decisions

    async def decide(
        self,
        s: AsyncSession,
        sender: TenantInfo,
        event: CloudEvent,
        rec: ledger.Recorded,
        redelivered: bool = False,
        *,
        span: tuple[str, str] | None = None,
    ) -> Decision | None:
        """Check and authorise one recorded event: what to publish to whom (or the rejection)."""
        if not rec.is_new and rec.status == ledger.ROUTED and redelivered:
            # Routed, but the broker gave the message back unacked: perhaps not every copy was
            # published. Publish the stored copies again (receivers drop repeats by id).
            recipients = await ledger.recipients_of(s, rec.id)
            outgoing = event
            if event.type == RECEIPT_TYPE and recipients:
                # Not verified again (it was, when first routed): only its reference is read.
                receipt = Receipt.model_validate(event.data)
                outgoing = self.hub_receipt(sender, receipt, event, recipients[0])
            allocation = ledger.Allocation(rec.id, recipients, False)
            return Decision(sender, event, outgoing, allocation, ledger_id=rec.id, repeat=True)
        if not rec.is_new and rec.status != ledger.RECEIVED:
            log.info("router.duplicate", event_id=event.id, sender=sender.code)
            return None
        try:
            if not sender.active:
                raise NotAuthorised(f"tenant {sender.code} is suspended")
            spec = spec_for(event.type)
            recipients = await resolve_recipients(sender, event, self.directory)
            # Verified (signed / sealed: against the key directory, never decrypted) and its
            # payload validated, once: the workflows read this, never `data` itself.
            verified = await self.keys.check(s, sender.code, event, spec, recipients)
            workflow = workflow_for(self.workflows, spec.short_type)
            if workflow is not None:
                recipients = await workflow.check(s, sender, verified, recipients)
                await workflow.record(s, sender, verified, recipients)
        except Transient:
            raise  # the store or broker is away: not the sender's fault, retried as a whole
        except InbeeldError as exc:
            return await self._refused(s, sender, event, rec, exc, span)
        outgoing = event
        if event.type == RECEIPT_TYPE:
            # The sender learns it from the hub, which checked the delivery it confirms.
            outgoing = self.hub_receipt(sender, verified.payload_as(Receipt), event, recipients[0])
        allocation = ledger.Allocation(rec.id, recipients, rec.is_new)
        return Decision(sender, event, outgoing, allocation, ledger_id=rec.id)

    async def _refused(
        self,
        s: AsyncSession,
        sender: TenantInfo,
        event: CloudEvent,
        rec: ledger.Recorded,
        exc: InbeeldError,
        span: tuple[str, str] | None = None,
    ) -> Decision:
        await ledger.set_status(s, [rec.id], ledger.REJECTED, exc.reason, detail=exc.message)
        await audit.append(
            s,
            activity=f"route {event.short_type}"[:64],
            actor=ACTOR,
            outcome=f"rejected:{exc.reason}",
            sender=sender.code,
            recipients=list(event.recipients),
            subject_ref=event.id,
            traceparent=event.traceparent,
            span=span,
            processing_activity_id=processing_activity_id(event.type),
        )
        rejection = self.rejection(sender, event.id, exc)
        log.info("router.rejected", event_id=event.id, sender=sender.code, reason=exc.reason)
        hub_rec = await ledger.record(s, rejection, "hub", len(rejection.to_bytes()))
        if hub_rec.is_new:
            await ledger.set_status(s, [hub_rec.id], ledger.ROUTED, exc.reason, detail=exc.message)
        allocation = ledger.Allocation(hub_rec.id, [sender.code], hub_rec.is_new)
        return Decision(sender, event, rejection, allocation, rejection, reason=exc.reason)

    # -- the hub events a decision produces -------------------------------------------------------

    def rejection(self, sender: TenantInfo, event_id: str, exc: InbeeldError) -> CloudEvent:
        payload = HubRejected(
            event_id=event_id or "unknown", reason=exc.reason, message=exc.message[:500], field=exc.field
        )
        return self._hub_event(
            "hub.rejected",
            payload.model_dump(exclude_none=True),
            sender.code,
            about=f"{sender.code}:{event_id}:{exc.reason}",
            subject=event_id or None,
        )

    def hub_receipt(self, sender: TenantInfo, data: Receipt, receipt: CloudEvent, to: str) -> CloudEvent:
        payload = HubReceipt(
            event_id=data.event_id, recipient=sender.code, processed_at=receipt.time.isoformat()
        )
        return self._hub_event(
            "hub.receipt",
            payload.model_dump(),
            to,
            about=f"{sender.code}:{data.event_source}:{data.event_id}",
            subject=data.event_id,
        )

    def _hub_event(
        self, short_type: str, data: dict[str, Any], recipient: str, *, about: str, subject: str | None = None
    ) -> CloudEvent:
        return publisher.hub_event(self.settings, short_type, data, [recipient], about=about, subject=subject)
