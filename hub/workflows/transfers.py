"""Pupil transfers at the hub (DESIGN section 2): the state machine of `schemas.transfers`
enforced on metadata, the timeline it keeps, the reminders and expiries time makes due, and
the queries the API serves.

    transfer.offered     municipality/bureau -> one municipality/bureau     => offered
    transfer.accepted    the receiver (or its bureau) -> the offerer only   => accepted
    transfer.rejected    the receiver (or its bureau) -> the offerer only   => rejected
    transfer.completed   the offerer (or its bureau) -> the receiver only   => completed
    transfer.cancelled   the offerer (or its bureau), before an answer      => cancelled
    (no answer by the deadline)  sweep(now): transfer.expired to both       => expired
    (`transfer_reminder_days` before it)  sweep(now): transfer.reminder to the receiver
    delivery.failed      a recipient of a step could not open it            (state unchanged)
        -> a `delivery_failed` step on the timeline (hub.workflows.delivery_failures); the
           transfer shows `delivery_failed` until a later step supersedes it

The transfer id travels in the envelope's `subject` on every transfer event: the payloads are
sealed and the hub cannot read them. It is unique across the hub and names its offerer
(`tr-GM0518-...`, `id_prefix`): an offer of an id with another tenant's prefix is
`not_authorised`, a second offer with a known id is `invalid_transition`. A step on a transfer
that does not exist and one on a transfer of others get the same refusal. The receiving
connector checks that `subject` equals the payload's `transfer_id` after opening it.

Regional bureaus: a bureau acts for the municipalities in the registry group
`bureau-<bureau code>` (lowercase; the operator manages it like any group, no extra table or
API). It may answer offers addressed to a member and complete or cancel a member's offers;
the timeline records the bureau as `actor` and the member as `acted_for`. An offer a bureau
sends itself is the bureau's own (the envelope has no "on behalf of" attribute, and the JWE
is sealed to the bureau's keys). Membership also lets members address `group:bureau-<code>`
with group-scoped events such as neighbour notices, which suits a region.

Kept: parties, state, deadline and the time of every step (timeline: step, actor, acted_for,
at, event id). Never the dossier. Idempotent by event id: a step already recorded is
accepted again with the same recipients (the router's redelivery after a crash).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit, registry
from hub.config import Settings
from hub.store.models import Transfer, TransferStep, utcnow
from hub.tenants import TenantInfo
from hub.verified import VerifiedEvent
from schemas.envelope import CloudEvent
from schemas.errors import InvalidTransition, NotAuthorised, NotFound, SchemaInvalid
from schemas.events import EVENTS, TransferExpired, TransferReminder
from schemas.transfers import FINAL, OPEN, STATES, Deadlines, Role, State, next_state, party_for, step_of

__all__ = [
    "BUREAU_GROUP_PREFIX",
    "StepView",
    "TransferView",
    "TransferWorkflow",
    "bureau_group",
    "counts",
    "get_for",
    "id_prefix",
    "list_for",
    "stuck",
]

BUREAU_GROUP_PREFIX = "bureau-"
HUB_ACTOR = "hub"
ACTOR = "hub-transfers"
_EVENT_NS = uuid.UUID("3c2d8f51-7a4e-4b0f-9d61-5e8a2b7c9f13")
SWEEP_BATCH = 500  # per sweep and kind; the next sweep takes the rest
DELIVERY_FAILED = "delivery_failed"  # a timeline step that is no state change


def id_prefix(offerer: str) -> str:
    """How the id of a transfer offered by `offerer` starts (`tr-GM0518-...`)."""
    return f"tr-{offerer}-"


def bureau_group(bureau_code: str) -> str:
    """The registry group listing the municipalities a regional bureau acts for."""
    return BUREAU_GROUP_PREFIX + bureau_code.lower()


async def _members_of(s: AsyncSession, tenant: TenantInfo) -> set[str]:
    if tenant.kind != "regional_bureau":
        return set()
    return set(await registry.group_members(s, bureau_group(tenant.code)) or [])


def _subject(event: CloudEvent) -> str:
    if not event.subject:
        raise SchemaInvalid(
            f"{event.short_type} carries its transfer id in `subject` "
            "(the hub cannot read the sealed payload)",
            field="subject",
        )
    return event.subject


@dataclass(frozen=True)
class _Plan:
    """What an event does to a transfer, worked out once by check and again by record."""

    transfer_id: str
    step: str
    before: State | None
    after: State
    counterparty: str
    acted_for: str | None
    already: bool  # this event is already on the timeline
    row: Transfer | None = None  # the transfer as read (the session holds it only weakly)


@dataclass
class _Batch:
    """What `prepare` read for one batch of the router, in one query per table: each transfer
    the batch names (None: not there yet) and the steps already on their timelines that carry
    one of the batch's event ids. `record` adds what it creates, so a later event of the same
    batch (an offer and its answer) sees it; nothing is flushed per event."""

    session: AsyncSession
    transfers: dict[str, Transfer | None]
    seen: dict[tuple[str, str], TransferStep]


class TransferWorkflow:
    prefixes: tuple[str, ...] = ("transfer.",)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings  # deadlines, the hub's `source`
        # The plan `check` made, for the `record` that follows it in the same transaction
        # (the router calls them back to back): saves reading the transfer twice.
        self._checked: tuple[AsyncSession, str, _Plan] | None = None
        self._batch: _Batch | None = None

    async def prepare(self, s: AsyncSession, events: Sequence[CloudEvent]) -> None:
        """Read, for the router's batch, the transfers its transfer events name (locked, in
        id order, so that two routers lock the rows they share in the same order) and the
        steps already recorded for its event ids: two statements per batch, not two per event."""
        mine = [e for e in events if e.short_type.startswith(self.prefixes) and e.subject]
        self._batch = None
        if not mine:
            return
        ids = sorted({e.subject for e in mine if e.subject})
        rows = await s.scalars(
            select(Transfer)
            .where(Transfer.transfer_id.in_(ids))
            .order_by(Transfer.transfer_id)
            .with_for_update()
        )
        transfers: dict[str, Transfer | None] = dict.fromkeys(ids)
        transfers.update({t.transfer_id: t for t in rows})
        known = [t for t in ids if transfers[t] is not None]
        seen: dict[tuple[str, str], TransferStep] = {}
        if known:
            steps = await s.scalars(
                select(TransferStep).where(
                    TransferStep.transfer_id.in_(known), TransferStep.event_id.in_([e.id for e in mine])
                )
            )
            seen = {(st.transfer_id, st.event_id): st for st in steps}
        self._batch = _Batch(s, transfers, seen)

    def _prepared(self, s: AsyncSession, transfer_id: str) -> _Batch | None:
        batch = self._batch
        return batch if batch is not None and batch.session is s and transfer_id in batch.transfers else None

    @property
    def deadlines(self) -> Deadlines:
        return Deadlines(self.settings.transfer_deadline_days, self.settings.transfer_reminder_days)

    # -- check / record ---------------------------------------------------------------------

    async def _plan(
        self, s: AsyncSession, sender: TenantInfo, event: CloudEvent, recipients: list[str]
    ) -> _Plan:
        transfer_id = _subject(event)
        step = step_of(event.short_type)
        batch = self._prepared(s, transfer_id)
        if batch is not None:
            transfer = batch.transfers[transfer_id]
        else:
            transfer = await s.scalar(
                select(Transfer).where(Transfer.transfer_id == transfer_id).with_for_update()
            )
        if transfer is not None:
            if batch is not None:
                seen = batch.seen.get((transfer_id, event.id))
            else:
                seen = await s.scalar(
                    select(TransferStep).where(
                        TransferStep.transfer_id == transfer_id, TransferStep.event_id == event.id
                    )
                )
            if seen is not None and seen.actor == sender.code and seen.step == step:
                counterparty = transfer.receiver if party_for(step) == "offerer" else transfer.offerer
                return _Plan(transfer_id, step, None, transfer.state, counterparty, seen.acted_for, True)  # type: ignore[arg-type]

        if step == "offered":
            # The id names its offerer, so no tenant can take (or probe) another's ids.
            if not transfer_id.startswith(id_prefix(sender.code)):
                raise NotAuthorised(
                    f"a new transfer id from {sender.code} starts with {id_prefix(sender.code)}",
                    field="subject",
                )
            if transfer is not None:
                raise InvalidTransition(
                    f"transfer {transfer_id} already exists; a new offer needs a new transfer id",
                    field="subject",
                )
            # hub.routing has made sure there is exactly one recipient, a municipality or bureau.
            after = next_state(None, event.short_type, "offerer")
            return _Plan(transfer_id, step, None, after, recipients[0], None, False)

        # One answer for "no such transfer" and "not yours" (as the API's 404), so that the
        # refusal tells no outsider whether a transfer id exists.
        unknown = InvalidTransition(f"there is no transfer {transfer_id} of yours", field="subject")
        if transfer is None:
            raise unknown
        members = await _members_of(s, sender)
        roles: dict[Role, str | None] = {}  # the role the sender may take, and for whom
        sides: tuple[tuple[Role, str], ...] = (("offerer", transfer.offerer), ("receiver", transfer.receiver))
        for side, party in sides:
            if sender.code == party:
                roles[side] = None
            elif party in members:
                roles[side] = party  # a bureau acting for a member
        if not roles:
            raise unknown
        wanted = party_for(step)
        role: Role = wanted if wanted in roles else next(iter(roles))
        before: State = transfer.state  # type: ignore[assignment]
        after = next_state(before, event.short_type, role)  # NotAuthorised / InvalidTransition
        counterparty = transfer.offerer if role == "receiver" else transfer.receiver
        if recipients != [counterparty]:
            raise NotAuthorised(
                f"{event.short_type} for transfer {transfer_id} goes to {counterparty} only",
                field="recipients",
            )
        return _Plan(transfer_id, step, before, after, counterparty, roles[role], False, transfer)

    async def check(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> list[str]:
        event = verified.event  # sealed: the hub reads the envelope only
        self._checked = None
        plan = await self._plan(s, sender, event, recipients)
        self._checked = (s, event.id, plan)
        return [plan.counterparty]

    async def record(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> None:
        event = verified.event
        checked, self._checked = self._checked, None
        if checked is not None and checked[0] is s and checked[1] == event.id:
            plan = checked[2]
        else:
            plan = await self._plan(s, sender, event, recipients)
        if plan.already:
            return
        now = utcnow()
        if plan.step == "offered":
            deadlines = self.deadlines
            transfer = Transfer(
                transfer_id=plan.transfer_id,
                offerer=sender.code,
                receiver=plan.counterparty,
                state=plan.after,
                offered_at=now,
                deadline_at=deadlines.deadline(now),
                remind_at=deadlines.remind_at(now),
                updated_at=now,
            )
            s.add(transfer)
        else:
            transfer = plan.row if plan.row is not None else await s.get_one(Transfer, plan.transfer_id)
            transfer.state, transfer.updated_at = plan.after, now
            if plan.after in FINAL:
                transfer.closed_at = now
        step = TransferStep(
            transfer_id=plan.transfer_id,
            step=plan.step,
            actor=sender.code,
            acted_for=plan.acted_for,
            at=now,
            event_id=event.id,
        )
        s.add(step)
        batch = self._prepared(s, plan.transfer_id)
        if batch is not None:  # flushed with the batch's next statement, not one by one
            batch.transfers[plan.transfer_id] = transfer
            batch.seen[(plan.transfer_id, event.id)] = step
        else:
            await s.flush()

    async def mark_delivery_failed(
        self, s: AsyncSession, transfer_id: str, reporter: str, event_id: str
    ) -> None:
        """A party could not open a step of this transfer (its `delivery.failed` is `event_id`):
        put it on the timeline, idempotently by event id. The state does not change: the sender
        decides what to do (cancel and offer again once the keys are sorted out)."""
        transfer = await s.get(Transfer, transfer_id)
        if transfer is None:
            return
        seen = await s.scalar(
            select(TransferStep.id).where(
                TransferStep.transfer_id == transfer_id, TransferStep.event_id == event_id
            )
        )
        if seen is None:
            s.add(
                TransferStep(
                    transfer_id=transfer_id,
                    step=DELIVERY_FAILED,
                    actor=reporter,
                    at=utcnow(),
                    event_id=event_id,
                )
            )
            await s.flush()

    # -- sweep ------------------------------------------------------------------------------

    def _hub_event(
        self, short_type: str, transfer_id: str, recipients: list[str], data: dict[str, object], now: datetime
    ) -> CloudEvent:
        spec = EVENTS["nl.leerplicht." + short_type]
        return CloudEvent(
            # derived from what it is about: a repeated sweep makes a duplicate, not a second one
            id=str(uuid.uuid5(_EVENT_NS, f"{short_type}:{transfer_id}")),
            source=self.settings.hub_source,
            type=spec.type,
            dataschema=spec.dataschema,
            time=now,
            subject=transfer_id,
            recipients=recipients,
            data=data,
        )

    async def sweep(self, s: AsyncSession, now: datetime) -> list[CloudEvent]:
        due: list[CloudEvent] = []
        expiring = await s.scalars(
            select(Transfer)
            .where(Transfer.state == "offered", Transfer.deadline_at <= now)
            .order_by(Transfer.deadline_at)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        )
        for t in list(expiring):
            t.state = next_state(t.state, "transfer.expired", "hub")  # type: ignore[arg-type]
            t.updated_at = t.closed_at = now
            event = self._hub_event(
                "transfer.expired",
                t.transfer_id,
                [t.offerer, t.receiver],
                TransferExpired(transfer_id=t.transfer_id, expired_at=now).model_dump(mode="json"),
                now,
            )
            s.add(
                TransferStep(
                    transfer_id=t.transfer_id, step="expired", actor=HUB_ACTOR, at=now, event_id=event.id
                )
            )
            await audit.append(
                s,
                activity="expire transfer",
                actor=ACTOR,
                outcome="expired",
                sender=t.offerer,
                recipients=[t.offerer, t.receiver],
                subject_ref=t.transfer_id,
                when=now,
            )
            due.append(event)
        reminding = await s.scalars(
            select(Transfer)
            .where(
                Transfer.state == "offered",
                Transfer.reminded_at.is_(None),
                Transfer.remind_at <= now,
                Transfer.deadline_at > now,
            )
            .order_by(Transfer.remind_at)
            .limit(SWEEP_BATCH)
            .with_for_update(skip_locked=True)
        )
        for t in list(reminding):
            t.reminded_at = now
            payload = TransferReminder(transfer_id=t.transfer_id, offerer=t.offerer, deadline=t.deadline_at)
            event = self._hub_event(
                "transfer.reminder", t.transfer_id, [t.receiver], payload.model_dump(mode="json"), now
            )
            s.add(
                TransferStep(
                    transfer_id=t.transfer_id, step="reminder", actor=HUB_ACTOR, at=now, event_id=event.id
                )
            )
            await audit.append(
                s,
                activity="remind transfer",
                actor=ACTOR,
                outcome="reminded",
                sender=t.offerer,
                recipients=[t.receiver],
                subject_ref=t.transfer_id,
                when=now,
            )
            due.append(event)
        await s.flush()
        return due


# -- queries for the API (metadata only) ----------------------------------------------------


@dataclass(frozen=True)
class StepView:
    step: str
    actor: str
    acted_for: str | None
    at: datetime
    event_id: str


@dataclass(frozen=True)
class TransferView:
    transfer_id: str
    offerer: str
    receiver: str
    state: str
    offered_at: datetime
    deadline_at: datetime
    reminded_at: datetime | None
    updated_at: datetime
    closed_at: datetime | None
    delivery_failed: bool = False  # a party could not open the latest step (see module docstring)

    @classmethod
    def of(cls, t: Transfer, failed_at: datetime | None = None) -> TransferView:
        return cls(
            t.transfer_id,
            t.offerer,
            t.receiver,
            t.state,
            t.offered_at,
            t.deadline_at,
            t.reminded_at,
            t.updated_at,
            t.closed_at,
            failed_at is not None and _naive(failed_at) >= _naive(t.updated_at),
        )


def _naive(when: datetime) -> datetime:
    """SQLite hands back naive UTC times, PostgreSQL aware ones: compare them alike."""
    return when.replace(tzinfo=None) if when.tzinfo is not None else when


async def _failures(s: AsyncSession, transfer_ids: list[str]) -> dict[str, datetime]:
    """The latest `delivery_failed` step of each of these transfers."""
    if not transfer_ids:
        return {}
    rows = await s.execute(
        select(TransferStep.transfer_id, func.max(TransferStep.at))
        .where(TransferStep.transfer_id.in_(transfer_ids), TransferStep.step == DELIVERY_FAILED)
        .group_by(TransferStep.transfer_id)
    )
    return {tid: at for tid, at in rows}


async def _parties(s: AsyncSession, tenant: str) -> set[str]:
    """The tenant, and for a regional bureau the members it acts for."""
    return {tenant} | await _members_of(s, await registry.get_tenant(s, tenant))


async def list_for(
    s: AsyncSession,
    tenant: str,
    *,
    role: Literal["all", "offerer", "receiver"] = "all",
    state: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[TransferView]:
    """The transfers `tenant` (or, for a bureau, a member) offered or received, newest first."""
    parties = await _parties(s, tenant)
    sides = {
        "offerer": Transfer.offerer.in_(parties),
        "receiver": Transfer.receiver.in_(parties),
        "all": or_(Transfer.offerer.in_(parties), Transfer.receiver.in_(parties)),
    }
    q = select(Transfer).where(sides[role])
    if state is not None:
        q = q.where(Transfer.state == state)
    q = q.order_by(Transfer.offered_at.desc(), Transfer.transfer_id).limit(limit).offset(offset)
    rows = list(await s.scalars(q))
    failed = await _failures(s, [t.transfer_id for t in rows])
    return [TransferView.of(t, failed.get(t.transfer_id)) for t in rows]


async def get_for(s: AsyncSession, tenant: str, transfer_id: str) -> tuple[TransferView, list[StepView]]:
    """One transfer with its timeline; `NotFound` unless `tenant` is (or acts for) a party."""
    t = await s.get(Transfer, transfer_id)
    if t is None or not {t.offerer, t.receiver} & await _parties(s, tenant):
        raise NotFound(f"no transfer {transfer_id}")
    steps = list(
        await s.scalars(
            select(TransferStep).where(TransferStep.transfer_id == transfer_id).order_by(TransferStep.id)
        )
    )
    failed = max((x.at for x in steps if x.step == DELIVERY_FAILED), default=None)
    view = TransferView.of(t, failed)
    return view, [StepView(x.step, x.actor, x.acted_for, x.at, x.event_id) for x in steps]


async def counts(s: AsyncSession) -> dict[str, int]:
    """Transfers per state (every state present, zero included)."""
    out: dict[str, int] = dict.fromkeys(STATES, 0)
    for state, n in await s.execute(select(Transfer.state, func.count()).group_by(Transfer.state)):
        out[state] = n
    return out


async def stuck(s: AsyncSession, now: datetime, days: int, limit: int = 100) -> list[TransferView]:
    """Open transfers whose last step is more than `days` old: an offer nobody answered, or an
    accepted one its offerer never completed. Oldest first."""
    q = (
        select(Transfer)
        .where(Transfer.state.in_(sorted(OPEN)), Transfer.updated_at <= now - timedelta(days=days))
        .order_by(Transfer.updated_at, Transfer.transfer_id)
        .limit(limit)
    )
    return [TransferView.of(t) for t in await s.scalars(q)]
