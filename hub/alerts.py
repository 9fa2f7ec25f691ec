"""Alerts: conditions at a tenant the hub operator should act on, raised and cleared.

    inbox_offline    the tenant's inbox has had no consumer (no connector reading) for
                     INBEELD_ALERT_OFFLINE_HOURS
    inbox_backlog    its oldest message has waited INBEELD_ALERT_BACKLOG_HOURS: the inbox was
                     never empty and nothing was taken from it (its ack count stood still) for
                     that long, so the message at its head then is still there
    inbox_full       the inbox is at its length limit (INBEELD_INBOX_MAX_LENGTH): senders get
                     `hub.rejected` `recipient_busy`
    webhook_failing  the tenant's connector reports that its case system's webhook keeps
                     failing or an outbox item was parked (`POST /tenants/me/health`)

A condition seen for the first time makes a *pending* alert (`since`); it is *raised* once it
has lasted its threshold (at once for the last two) and *cleared* when the condition goes away
(a pending one is simply forgotten). Each raising and each clearing is delivered once (the
operator webhook and a `hub.alert` to the tenant, `hub.alert_watch`): `claim` hands it to one
process only. Several processes may evaluate: the store's unique `open_key` keeps one open
alert per tenant and kind, and every transition is a conditional update that one wins.

No personal data here: tenant codes, kinds, counts and HTTP status codes only. The inputs are
plain values (`InboxState`), never broker or HTTP types.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import Alert, utcnow

__all__ = [
    "INBOX_KINDS",
    "KINDS",
    "Claimed",
    "InboxState",
    "Thresholds",
    "claim",
    "counts",
    "observe",
    "open_alerts",
    "recent",
    "report_webhook",
    "unclaim",
]

log = structlog.get_logger("inbeeld.alerts")

OFFLINE = "inbox_offline"
BACKLOG = "inbox_backlog"
FULL = "inbox_full"
WEBHOOK = "webhook_failing"
INBOX_KINDS = (OFFLINE, BACKLOG, FULL)
KINDS = (*INBOX_KINDS, WEBHOOK)

Transition = Literal["raised", "cleared"]


@dataclass(frozen=True)
class InboxState:
    """One tenant's inbox as the broker reports it."""

    tenant: str
    messages: int
    consumers: int
    acked: int  # messages acknowledged from it so far (the broker's counter)
    limit: int  # its length limit


@dataclass(frozen=True)
class Thresholds:
    offline: timedelta
    backlog: timedelta


@dataclass(frozen=True)
class Claimed:
    """A raising or clearing this process delivers."""

    id: int
    tenant: str
    kind: str
    transition: Transition
    detail: str
    since: datetime
    raised_at: datetime
    cleared_at: datetime | None


async def observe(
    s: AsyncSession,
    inboxes: Iterable[InboxState],
    thresholds: Thresholds,
    now: datetime | None = None,
) -> None:
    """Update the inbox alerts from one look at the broker. A tenant not in `inboxes` (suspended,
    or not provisioned) has its inbox alerts cleared."""
    now = now or utcnow()
    seen: set[str] = set()
    for inbox in inboxes:
        seen.add(inbox.tenant)
        await _condition(
            s,
            inbox.tenant,
            OFFLINE,
            inbox.consumers == 0,
            now,
            after=thresholds.offline,
            detail="no connector is reading the inbox",
        )
        await _backlog(s, inbox, thresholds.backlog, now)
        await _condition(
            s,
            inbox.tenant,
            FULL,
            inbox.messages >= inbox.limit,
            now,
            detail=f"the inbox holds {inbox.messages} messages, its limit",
        )
    stale = await s.scalars(
        select(Alert).where(
            Alert.open_key.is_not(None), Alert.kind.in_(INBOX_KINDS), Alert.tenant.not_in(seen)
        )
    )
    for alert in list(stale):
        await _clear(s, alert, now)


async def report_webhook(
    s: AsyncSession, tenant: str, failing: bool, detail: str, now: datetime | None = None
) -> Alert | None:
    """The tenant's connector says its webhook is failing (raise at once) or delivering again
    (clear). Returns the open alert, if any."""
    return await _condition(s, tenant, WEBHOOK, failing, now or utcnow(), detail=detail)


async def _backlog(s: AsyncSession, inbox: InboxState, after: timedelta, now: datetime) -> None:
    current = await _open(s, inbox.tenant, BACKLOG)
    if current is not None and current.marker != inbox.acked:
        await _clear(s, current, now)  # something was taken: the head moved, start again
    await _condition(
        s,
        inbox.tenant,
        BACKLOG,
        inbox.messages > 0,
        now,
        after=after,
        detail=f"{inbox.messages} messages waiting, none taken since the oldest arrived",
        marker=inbox.acked,
    )


async def _condition(
    s: AsyncSession,
    tenant: str,
    kind: str,
    holds: bool,
    now: datetime,
    *,
    detail: str,
    after: timedelta = timedelta(0),
    marker: int | None = None,
) -> Alert | None:
    current = await _open(s, tenant, kind)
    if not holds:
        if current is not None:
            await _clear(s, current, now)
        return None
    if current is None:
        current = await _pending(s, tenant, kind, now, detail[:200], marker)
        if current is None:
            return None  # another process opened it a moment ago; it carries on from there
    elif current.raised_at is not None and current.detail != detail[:200]:
        current.detail = detail[:200]
    if current.raised_at is None and now - current.since >= after:
        won = await s.execute(
            update(Alert)
            .where(Alert.id == current.id, Alert.raised_at.is_(None))
            .values(raised_at=now, detail=detail[:200])
            .execution_options(synchronize_session=False)
        )
        if won.rowcount == 1:  # type: ignore[attr-defined]
            await s.refresh(current)
            log.warning("alert.raised", tenant=tenant, kind=kind, alert=current.id)
    return current


async def _open(s: AsyncSession, tenant: str, kind: str) -> Alert | None:
    result: Alert | None = await s.scalar(select(Alert).where(Alert.open_key == f"{tenant}:{kind}"))
    return result


async def _pending(
    s: AsyncSession, tenant: str, kind: str, now: datetime, detail: str, marker: int | None
) -> Alert | None:
    alert = Alert(
        tenant=tenant,
        kind=kind,
        open_key=f"{tenant}:{kind}",
        detail=detail,
        since=now,
        marker=marker,
        raise_notified=False,
        clear_notified=False,
    )
    try:
        async with s.begin_nested():
            s.add(alert)
    except IntegrityError:
        return None
    return alert


async def _clear(s: AsyncSession, alert: Alert, now: datetime) -> None:
    if alert.raised_at is None:  # pending: never raised, nothing to tell
        await s.execute(delete(Alert).where(Alert.id == alert.id, Alert.raised_at.is_(None)))
        return
    won = await s.execute(
        update(Alert)
        .where(Alert.id == alert.id, Alert.cleared_at.is_(None))
        .values(cleared_at=now, open_key=None)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount == 1:  # type: ignore[attr-defined]
        log.info("alert.cleared", tenant=alert.tenant, kind=alert.kind, alert=alert.id)
    await s.refresh(alert)


async def claim(s: AsyncSession, limit: int = 100) -> list[Claimed]:
    """Raisings and clearings not delivered yet, each now this caller's (in this transaction)."""
    rows = await s.scalars(
        select(Alert)
        .where(
            ((Alert.raised_at.is_not(None)) & (Alert.raise_notified.is_(False)))
            | ((Alert.cleared_at.is_not(None)) & (Alert.clear_notified.is_(False)))
        )
        .order_by(Alert.id)
        .limit(limit)
    )
    claimed: list[Claimed] = []
    for alert in list(rows):
        assert alert.raised_at is not None
        steps: list[tuple[Transition, bool]] = [("raised", not alert.raise_notified)]
        steps.append(("cleared", alert.cleared_at is not None and not alert.clear_notified))
        for transition, due in steps:
            if not due:
                continue
            flag = Alert.raise_notified if transition == "raised" else Alert.clear_notified
            won = await s.execute(
                update(Alert)
                .where(Alert.id == alert.id, flag.is_(False))
                .values({flag.key: True})
                .execution_options(synchronize_session=False)
            )
            if won.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(
                    Claimed(
                        alert.id,
                        alert.tenant,
                        alert.kind,
                        transition,
                        alert.detail,
                        alert.since,
                        alert.raised_at,
                        alert.cleared_at if transition == "cleared" else None,
                    )
                )
    return claimed


async def unclaim(s: AsyncSession, item: Claimed) -> None:
    """Delivering `item` failed: leave it for the next evaluation."""
    flag = Alert.raise_notified if item.transition == "raised" else Alert.clear_notified
    await s.execute(update(Alert).where(Alert.id == item.id).values({flag.key: False}))


async def open_alerts(s: AsyncSession) -> Sequence[Alert]:
    """Raised and not cleared, newest first."""
    rows = await s.scalars(
        select(Alert)
        .where(Alert.raised_at.is_not(None), Alert.cleared_at.is_(None))
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
    )
    return list(rows)


async def recent(s: AsyncSession, limit: int = 100) -> Sequence[Alert]:
    """Every raised alert, open or cleared, newest first."""
    rows = await s.scalars(
        select(Alert).where(Alert.raised_at.is_not(None)).order_by(Alert.id.desc()).limit(limit)
    )
    return list(rows)


async def counts(s: AsyncSession) -> dict[str, int]:
    """Open alerts per kind (every kind present, 0 when none)."""
    found = {kind: 0 for kind in KINDS}
    for alert in await open_alerts(s):
        found[alert.kind] = found.get(alert.kind, 0) + 1
    return found
