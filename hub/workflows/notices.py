"""Neighbour notices at the hub (DESIGN section 2): what the router allows, and the little it keeps.

    notice.pupil_missing   asker -> group members (municipalities and bureaus only)  => open
    notice.pupil_found     a recipient of that open notice -> the asker only          (open)
    notice.closed          the asker -> the notice's recipients                       => closed
    (deadline passed)      sweep(now), or the first step seen after it                => expired

A notice is known by (asker, notice id); the notice id travels in the envelope's `subject`
on all three types (a `pupil_found` is sealed, so the hub cannot read its payload). The
deadline travels in the signed `pupil_missing` payload, which the router has verified and
validated before this workflow runs (`VerifiedEvent.payload`): notices carry no personal
data, so the hub may read them. A
deadline already past, or more than `Settings.notice_ttl_days` ahead, is refused.

Kept: asker, notice id, addressed group/tenants, recipients, state, deadline, times, and
who answered when. Never the blind index, the group key id, the contact point or anything
of an answer: the hub needs none of it to enforce the rules, and what it does not hold it
cannot leak. An expiry emits no event — every member has the deadline from the notice and
expires it itself — but is written to the audit log like every other state change.

Idempotency: the router runs check+record in one transaction with the ledger, so a crash
rolls both back; still, a step already applied (same event id) is accepted again with the
same recipients.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit
from hub.config import Settings
from hub.store.models import Notice, NoticeAnswer, Tenant, utcnow
from hub.tenants import PUPIL_KINDS, TenantInfo
from hub.verified import VerifiedEvent
from schemas.envelope import CloudEvent
from schemas.errors import InvalidTransition, NotAuthorised, SchemaInvalid, UnknownRecipient
from schemas.events import NoticeClosed, PupilMissing

__all__ = ["CLOSED", "EXPIRED", "OPEN", "NoticeWorkflow"]

OPEN, CLOSED, EXPIRED = "open", "closed", "expired"
MISSING, FOUND, CLOSE = "notice.pupil_missing", "notice.pupil_found", "notice.closed"
ACTOR = "hub-notices"


def _subject(event: CloudEvent) -> str:
    if not event.subject:
        raise SchemaInvalid(f"{event.short_type} carries its notice id in `subject`", field="subject")
    return event.subject


class NoticeWorkflow:
    prefixes: tuple[str, ...] = ("notice.",)

    def __init__(self, settings: Settings) -> None:
        self.max_days = settings.notice_ttl_days

    # -- check ------------------------------------------------------------------------------

    async def check(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> list[str]:
        short = verified.event.short_type
        if short == MISSING:
            return await self._check_missing(s, sender, verified, recipients)
        if short == FOUND:
            return await self._check_found(s, sender, verified.event, recipients)
        if short == CLOSE:
            return await self._check_closed(s, sender, verified)
        raise InvalidTransition(f"no notice step {short}", field="type")  # pragma: no cover

    async def _check_missing(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> list[str]:
        event, payload = verified.event, verified.payload_as(PupilMissing)
        if _subject(event) != payload.notice_id:
            raise SchemaInvalid("`subject` must be the notice id", field="subject")
        known = await s.get(Notice, (sender.code, payload.notice_id))
        if known is not None:
            if known.event_id == event.id:
                return list(known.recipients)
            raise InvalidTransition(f"notice {payload.notice_id} already exists", field="subject")
        now = utcnow()
        if payload.deadline <= now:
            raise SchemaInvalid("the deadline has already passed", field="data.deadline")
        if payload.deadline > now + timedelta(days=self.max_days):
            raise SchemaInvalid(
                f"a notice stays open at most {self.max_days} days; choose an earlier deadline",
                field="data.deadline",
            )
        # An association (Ingrado) holds no pupils: it has nothing to match, so it is not asked.
        keeping = set(
            await s.scalars(  # one query for the whole group, not one per member
                select(Tenant.code).where(Tenant.code.in_(recipients), Tenant.kind.in_(PUPIL_KINDS))
            )
        )
        kept = [c for c in recipients if c in keeping]
        if not kept:
            raise UnknownRecipient("nobody in that group keeps a pupil register", field="recipients")
        return kept

    async def _open_notice(self, s: AsyncSession, asker: str, notice_id: str) -> Notice:
        notice = await s.get(Notice, (asker, notice_id))
        if notice is None:
            raise InvalidTransition(f"{asker} has no notice {notice_id}", field="subject")
        if notice.state == OPEN and notice.deadline <= utcnow():
            await self._expire(s, notice, utcnow())
        if notice.state != OPEN:
            raise InvalidTransition(f"notice {notice_id} is {notice.state}", field="subject")
        return notice

    async def _check_found(
        self, s: AsyncSession, sender: TenantInfo, event: CloudEvent, recipients: list[str]
    ) -> list[str]:
        notice_id = _subject(event)
        answered = await s.get(NoticeAnswer, (event.id, event.source))
        if answered is not None:
            return [answered.asker]
        asker = recipients[0]  # hub.routing: a pupil_found goes to exactly one tenant
        known = await s.get(Notice, (asker, notice_id))
        if known is not None and sender.code not in known.recipients:
            raise NotAuthorised(f"{sender.code} was not asked in notice {notice_id}", field="subject")
        await self._open_notice(s, asker, notice_id)
        return [asker]

    async def _check_closed(self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent) -> list[str]:
        event, payload = verified.event, verified.payload_as(NoticeClosed)
        if _subject(event) != payload.notice_id:
            raise SchemaInvalid("`subject` must be the notice id", field="subject")
        notice = await s.get(Notice, (sender.code, payload.notice_id))
        if notice is None:
            theirs = await s.scalar(
                select(Notice.asker).where(Notice.notice_id == payload.notice_id).limit(1)
            )
            if theirs is not None:
                raise NotAuthorised(f"only {theirs} closes notice {payload.notice_id}", field="subject")
        if notice is not None and notice.state == CLOSED and notice.close_event_id == event.id:
            return list(notice.recipients)
        notice = await self._open_notice(s, sender.code, payload.notice_id)
        # Everyone asked hears it, whatever the asker addressed (the group may have changed).
        return list(notice.recipients)

    # -- record -----------------------------------------------------------------------------

    async def record(
        self, s: AsyncSession, sender: TenantInfo, verified: VerifiedEvent, recipients: list[str]
    ) -> None:
        event, short = verified.event, verified.event.short_type
        if short == MISSING:
            payload = verified.payload_as(PupilMissing)
            if await s.get(Notice, (sender.code, payload.notice_id)) is None:
                s.add(
                    Notice(
                        asker=sender.code,
                        notice_id=payload.notice_id,
                        event_id=event.id,
                        addressed=list(event.recipients),
                        recipients=list(recipients),
                        state=OPEN,
                        deadline=payload.deadline,
                        created_at=utcnow(),
                    )
                )
        elif short == FOUND:
            if await s.get(NoticeAnswer, (event.id, event.source)) is None:
                s.add(
                    NoticeAnswer(
                        event_id=event.id,
                        source=event.source,
                        asker=recipients[0],
                        notice_id=_subject(event),
                        responder=sender.code,
                        answered_at=utcnow(),
                    )
                )
        elif short == CLOSE:
            closed = verified.payload_as(NoticeClosed)
            notice = await s.get(Notice, (sender.code, closed.notice_id))
            if notice is not None and notice.state == OPEN:
                notice.state, notice.closed_at = CLOSED, utcnow()
                notice.close_event_id, notice.close_reason = event.id, closed.reason
        await s.flush()

    # -- sweep ------------------------------------------------------------------------------

    async def sweep(self, s: AsyncSession, now: datetime) -> list[CloudEvent]:
        due = await s.scalars(select(Notice).where(Notice.state == OPEN, Notice.deadline <= now))
        for notice in list(due):
            await self._expire(s, notice, now)
        return []

    async def _expire(self, s: AsyncSession, notice: Notice, now: datetime) -> None:
        notice.state, notice.closed_at, notice.close_reason = EXPIRED, now, "expired"
        await audit.append(
            s,
            activity="expire notice",
            actor=ACTOR,
            outcome="expired",
            sender=notice.asker,
            recipients=list(notice.recipients),
            subject_ref=notice.notice_id,
        )
        await s.flush()
