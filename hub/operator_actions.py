"""The hub operator's actions: register and provision a tenant, rotate its broker password,
suspend and reinstate it, create a group and change its members, create and revoke API tokens,
replay a dead letter, add a console login, log in to or out of the console, verify the audit
chain.

The API routes and the CLI both call these functions, so every action leaves the same trace
whichever way it was taken: a record in the audit hash chain (who, what, on what, the outcome;
the record's time is when) written in the same transaction as the change itself, and one
structured log line. Neither ever holds a token, a password, a label or a message body."""

from __future__ import annotations

import getpass
import re
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from aio_pika.abc import AbstractChannel
from sqlalchemy.ext.asyncio import AsyncSession

from hub import audit, auth, operator_logins, provisioning, registry
from hub.broker.management import Management
from hub.config import Settings
from hub.replay import discard_dead_letter, replay_dead_letter
from hub.store.db import Database
from hub.tenants import TenantInfo

log = structlog.get_logger("inbeeld.operator")
_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")


@dataclass(frozen=True)
class Actor:
    """Who acts: an operator API token (by its id) or a person at the hub's CLI (by OS user)."""

    ref: str

    @classmethod
    def token(cls, token_id: int) -> Actor:
        return cls(f"operator:token:{token_id}")

    @classmethod
    def web(cls, name: str) -> Actor:
        """An operator logged in to the console, by login name."""
        return cls(f"operator:web:{_UNSAFE.sub('_', name)[:40]}")

    @classmethod
    def cli(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):  # no login name and no passwd entry (e.g. a bare container)
            user = "unknown"
        return cls(f"operator:cli:{_UNSAFE.sub('_', user)[:40]}")


async def _record(
    s: AsyncSession,
    actor: Actor,
    activity: str,
    outcome: str,
    subject_ref: str,
    tenants: Sequence[str | None] = (),
) -> None:
    # The tenants an action is about are named as recipients, so each finds the action in its
    # own GET /audit (a tenant is entitled to know it was suspended, or got a new token).
    recipients = [t for t in tenants if t is not None]
    await audit.append(
        s, activity=activity, actor=actor.ref, outcome=outcome, subject_ref=subject_ref, recipients=recipients
    )
    log.info("operator.action", actor=actor.ref, action=activity, subject=subject_ref, outcome=outcome)


async def add_tenant(
    s: AsyncSession, actor: Actor, code: str, name: str, kind: str, oin: str | None = None
) -> TenantInfo:
    tenant = await registry.add_tenant(s, code, name, kind, oin)
    await _record(s, actor, "add tenant", "added", f"tenant:{code}", [code])
    return tenant


async def provision_tenant(
    s: AsyncSession, mgmt: Management, channel: AbstractChannel, settings: Settings, actor: Actor, code: str
) -> provisioning.BrokerCredentials:
    """Create (or re-key) the tenant's broker user and inbox; the password goes to the caller only."""
    creds = await provisioning.provision_tenant(s, mgmt, channel, settings, code)
    await _record(s, actor, "provision tenant", "provisioned", f"tenant:{code}", [code])
    return creds


async def remove_tenant(
    s: AsyncSession,
    mgmt: Management,
    channel: AbstractChannel,
    settings: Settings,
    actor: Actor,
    code: str,
    *,
    force: bool,
) -> int:
    """Remove `code` (see provisioning.remove_tenant); returns the messages dropped with its inbox."""
    dropped = await provisioning.remove_tenant(s, mgmt, channel, settings, code, force=force)
    outcome = f"removed, {dropped} dropped" if dropped else "removed"
    await _record(s, actor, "remove tenant", outcome, f"tenant:{code}", [code])
    return dropped


async def rotate_broker_password(
    s: AsyncSession, mgmt: Management, settings: Settings, actor: Actor, code: str, *, close_connections: bool
) -> tuple[provisioning.BrokerCredentials, int]:
    creds, closed = await provisioning.rotate_broker_password(
        s, mgmt, settings, code, close_connections=close_connections
    )
    await _record(s, actor, "rotate broker password", "rotated", f"tenant:{code}", [code])
    return creds, closed


async def add_group(
    s: AsyncSession, actor: Actor, name: str, members: Sequence[str], description: str = ""
) -> list[str]:
    added = await registry.add_group(s, name, list(members), description)
    await _record(s, actor, "add group", "added", f"group:{name}", added)
    return added


async def add_to_group(s: AsyncSession, actor: Actor, name: str, code: str) -> bool:
    """Put tenant `code` in group `name` (False: it was a member already, nothing recorded)."""
    added = await registry.add_member(s, name, code)
    if added:
        await _record(s, actor, "add group member", "added", f"group:{name}", [code])
    return added


async def remove_from_group(s: AsyncSession, actor: Actor, name: str, code: str) -> bool:
    """Take tenant `code` out of group `name` (False: it was not a member, nothing recorded)."""
    removed = await registry.remove_member(s, name, code)
    if removed:
        await _record(s, actor, "remove group member", "removed", f"group:{name}", [code])
    return removed


async def suspend_tenant(
    s: AsyncSession, mgmt: Management, settings: Settings, actor: Actor, code: str
) -> int:
    """Suspend `code` (see provisioning.suspend_tenant); returns the connections closed."""
    closed = await provisioning.suspend_tenant(s, mgmt, settings, code)
    await _record(s, actor, "suspend tenant", "suspended", f"tenant:{code}", [code])
    return closed


async def reinstate_tenant(
    s: AsyncSession, mgmt: Management, settings: Settings, actor: Actor, code: str
) -> None:
    await provisioning.reinstate_tenant(s, mgmt, settings, code)
    await _record(s, actor, "reinstate tenant", "reinstated", f"tenant:{code}", [code])


async def create_token(
    s: AsyncSession, actor: Actor, scope: auth.Scope, tenant: str | None = None, label: str = ""
) -> tuple[int, str]:
    """Issue a token; returns (id, plaintext) — the plaintext goes to the caller only."""
    token_id, token = await auth.issue(s, scope, tenant, label)
    await _record(s, actor, f"create {scope} token", "created", f"token:{token_id}", [tenant])
    return token_id, token


async def revoke_token(s: AsyncSession, actor: Actor, token_id: int) -> None:
    """Revoke a token; the last working operator token is refused (auth.LastOperatorToken)."""
    try:
        revoked = await auth.revoke(s, token_id)
    except auth.LastOperatorToken:
        log.warning(
            "operator.refused",
            actor=actor.ref,
            action="revoke token",
            subject=f"token:{token_id}",
            reason=auth.LastOperatorToken.reason,
        )
        raise
    await _record(s, actor, f"revoke {revoked.scope} token", "revoked", f"token:{token_id}", [revoked.tenant])


async def replay(settings: Settings, db: Database, actor: Actor, dl_id: int) -> None:
    """Send dead letter `dl_id` to the router again (hub.replay), then record that it was."""
    await replay_dead_letter(settings, db, dl_id)
    async with db.session() as s, s.begin():
        await _record(s, actor, "replay dead letter", "replayed", f"dead-letter:{dl_id}")


async def discard(s: AsyncSession, actor: Actor, dl_id: int, reason: str) -> None:
    """Discard dead letter `dl_id` (hub.replay.discard_dead_letter) and record who did, why."""
    await discard_dead_letter(s, dl_id, reason)
    await _record(s, actor, "discard dead letter", "discarded", f"dead-letter:{dl_id}")


async def add_login(s: AsyncSession, actor: Actor, name: str, password: str) -> None:
    """Create a console login (hub.operator_logins); the password is never recorded."""
    await operator_logins.add(s, name, password)
    await _record(s, actor, "add console login", "added", f"login:{name}")


async def log_in(s: AsyncSession, name: str, password: str) -> operator_logins.Attempt:
    """Check a console login and record the attempt (a refused one too) under the name tried."""
    attempt = await operator_logins.attempt(s, name, password)
    outcome = {"ok": "logged in", "refused": "refused", "locked": "locked"}[attempt.outcome]
    await _record(s, Actor.web(name), "console login", outcome, f"login:{_UNSAFE.sub('_', name)[:40]}")
    return attempt


async def log_out(s: AsyncSession, actor: Actor) -> None:
    await _record(
        s, actor, "console logout", "logged out", "login:" + actor.ref.removeprefix("operator:web:")
    )


async def verify_chain(s: AsyncSession, actor: Actor) -> audit.ChainsReport:
    """Recompute the audit hash chains (hub.audit.verify), then record that they were and the
    result (intact: every chain)."""
    report = await audit.verify(s)
    await _record(s, actor, "verify audit chain", "intact" if report.intact else "broken", "audit:chain")
    return report
