"""Provisioning tenants on the broker (DESIGN section 4): one RabbitMQ user per tenant that
can configure nothing, write only to the ingress and read only its own inbox, whose name is
unguessable (`inbeeld.inbox.<code>.<random>`, see hub.broker.topology), and that may hold at
most `tenant_max_connections` connections and `tenant_max_channels` channels (RabbitMQ user
limits), so one tenant cannot exhaust the broker for the others.

Credentials are generated here and returned once; the hub never stores the password (the
broker keeps only its own salted hash).

Why connections are closed, and how (RabbitMQ 3.10, measured in tests/hub/test_isolation.py
and test_api_auth.py):
- Clearing a user's permissions refuses *new* connections (vhost access) but does not touch
  open ones: a channel keeps its cached permission checks, so a publisher keeps publishing
  and a consumer keeps receiving. Suspension therefore always closes the connections too.
- Changing a password does not re-authenticate open connections either, so rotation closes
  them as well (see `rotate_broker_password`).
- Connections are found through the broker's connection tracking, which is current at once;
  the management API's `/connections` list lags up to a statistics interval (~5 s) behind.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from aio_pika.abc import AbstractChannel
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import registry
from hub.broker.management import Management
from hub.broker.topology import INGRESS, declare_inbox, legacy_inbox_name, new_inbox_name
from hub.config import Settings
from hub.store.models import Transfer
from schemas.errors import Conflict, InbeeldError

# The routing key a tenant publishes with is the event type only.
TOPIC_WRITE = r"^nl\.leerplicht\.[a-z_.0-9]+$"


class ProvisioningError(InbeeldError):
    reason = "provisioning_error"


class TenantBusy(ProvisioningError, Conflict):
    """The tenant cannot be removed yet: open transfers, or messages still in its inbox."""

    reason = "tenant_busy"


# A transfer in one of these states still waits for a step of one of its two tenants.
OPEN_TRANSFER_STATES = ("offered", "accepted")


@dataclass(frozen=True)
class BrokerCredentials:
    tenant: str
    username: str
    password: str
    vhost: str
    inbox: str | None = None  # the queue the tenant consumes; None only for an unmigrated one

    def __repr__(self) -> str:  # never print the password by accident
        return f"BrokerCredentials(tenant={self.tenant!r}, username={self.username!r}, vhost={self.vhost!r})"


PASSWORD_ENV = "INBEELD_BROKER_PASSWORD"  # noqa: S105 - the variable the connector's example names


def connector_broker_block(creds: BrokerCredentials, broker_url: str) -> str:
    """The `[broker]` section of the tenant's `connector.toml`, ready to paste: the broker at
    `broker_url` (scheme, host and port the tenant reaches; any path or credentials in it are
    dropped) on our vhost, the user, its inbox, and the password read from `PASSWORD_ENV`
    (never written in the file). Values are JSON strings, which TOML reads alike."""
    parts = urlsplit(broker_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    url = urlunsplit((parts.scheme, host, "/" + quote(creds.vhost, safe=""), "", ""))
    lines = ["[broker]", f"url = {json.dumps(url)}", f"username = {json.dumps(creds.username)}"]
    lines.append(f"password_env = {json.dumps(PASSWORD_ENV)}")
    if creds.inbox is not None:
        lines.append(f"inbox = {json.dumps(creds.inbox)}")
    return "\n".join(lines) + "\n"


def broker_username(vhost: str, tenant_code: str) -> str:
    """Users are broker-wide, so they carry the deployment's vhost to stay unique."""
    return f"{vhost}.{tenant_code}"


def permissions_for(*, inbox: str) -> dict[str, str]:
    """The vhost permissions of an active tenant whose inbox is `inbox`; `inbeeld doctor`
    checks for exactly these. (Keyword-only: it once took the tenant code, and a code here
    would silently grant a queue that does not exist.)"""
    return {
        "configure": "^$",
        "write": f"^{re.escape(INGRESS)}$",
        "read": f"^{re.escape(inbox)}$",
    }


def limits_for(settings: Settings) -> dict[str, int]:
    """The RabbitMQ user limits of every tenant; `inbeeld doctor` checks for exactly these."""
    return {"max-connections": settings.tenant_max_connections, "max-channels": settings.tenant_max_channels}


def topic_permissions_for(tenant_code: str) -> dict[str, str]:
    """The topic permissions of an active tenant (the same for every tenant)."""
    return {"exchange": INGRESS, "write": TOPIC_WRITE, "read": "^$"}


async def grant(mgmt: Management, settings: Settings, username: str, *, inbox: str) -> None:
    """Give `username` exactly the rights of a tenant whose inbox is `inbox` (idempotent)."""
    await mgmt.set_permissions(settings.vhost, username, **permissions_for(inbox=inbox))
    topic = topic_permissions_for(username)  # the same for every tenant
    await mgmt.set_topic_permissions(settings.vhost, username, **topic)


async def apply_limits(mgmt: Management, settings: Settings, username: str) -> None:
    """Set the tenant user's connection and channel limits (idempotent; re-applied by every
    `inbeeld tenant provision`, so a changed setting reaches existing tenants)."""
    for name, value in limits_for(settings).items():
        await mgmt.set_user_limit(username, name, value)


async def provision_tenant(
    session: AsyncSession,
    mgmt: Management,
    channel: AbstractChannel,
    settings: Settings,
    tenant_code: str,
) -> BrokerCredentials:
    """Create (or re-key) the tenant's broker user, limits and inbox. Idempotent apart from the
    password. A tenant still on an old-style inbox is refused: `inbeeld migrate` moves it
    (with its waiting messages), which this must not do inside the caller's transaction."""
    tenant = await registry.get_tenant(session, tenant_code)
    if tenant.removed:
        raise registry.TenantRemoved(f"tenant {tenant.code} was removed; it cannot be provisioned again")
    username = broker_username(settings.vhost, tenant.code)
    if tenant.inbox is None and await mgmt.queue(settings.vhost, legacy_inbox_name(tenant.code)):
        raise ProvisioningError(
            f"tenant {tenant.code} still has an old-style inbox; run `inbeeld migrate` first, "
            "which moves its waiting messages to its new inbox"
        )
    inbox = tenant.inbox or new_inbox_name(tenant.code)
    password = secrets.token_urlsafe(24)
    await declare_inbox(channel, inbox, tenant.code, settings.delivery_limit, settings.inbox_max_length)
    await registry.set_inbox(session, tenant.code, inbox)
    await mgmt.put_user(username, password)
    await apply_limits(mgmt, settings, username)
    if tenant.active:
        await grant(mgmt, settings, username, inbox=inbox)
    await registry.set_broker_username(session, tenant.code, username)
    return BrokerCredentials(tenant.code, username, password, settings.vhost, inbox)


async def rotate_broker_password(
    session: AsyncSession,
    mgmt: Management,
    settings: Settings,
    tenant_code: str,
    *,
    close_connections: bool = True,
) -> tuple[BrokerCredentials, int]:
    """Give the tenant's broker user a new password; returns (credentials, connections closed).

    The new password is returned once and not stored. Permissions and other tenants are
    untouched. The tenant's open connections are closed by default: the broker does not
    re-authenticate them, and a rotation is usually done because the old password may have
    leaked, so whoever holds it must lose access now, not at their next reconnect. The
    tenant's connector reconnects with the new password once it is configured; pass
    `close_connections=False` for a planned, overlapping hand-over."""
    tenant = await registry.get_tenant(session, tenant_code)
    if tenant.broker_username is None:
        raise ProvisioningError(f"tenant {tenant.code} has no broker user yet; provision it first")
    password = secrets.token_urlsafe(24)
    await mgmt.put_user(tenant.broker_username, password)
    closed = 0
    if close_connections:
        closed = await mgmt.close_connections_of(tenant.broker_username, "broker password rotated")
    creds = BrokerCredentials(tenant.code, tenant.broker_username, password, settings.vhost, tenant.inbox)
    return creds, closed


async def suspend_tenant(
    session: AsyncSession, mgmt: Management, settings: Settings, tenant_code: str
) -> int:
    """Mark inactive, revoke broker permissions and close live connections at once.

    Permissions go first, so a connection the tenant opens meanwhile is refused; then every
    open connection is closed and the broker is polled until it reports none left. Returns
    how many were closed. The tenant's API tokens stop working with the registry flag."""
    tenant = await registry.set_active(session, tenant_code, False)
    if tenant.broker_username is None:
        return 0
    await mgmt.clear_permissions(settings.vhost, tenant.broker_username)
    return await mgmt.close_connections_of(tenant.broker_username, "tenant suspended")


async def reinstate_tenant(
    session: AsyncSession, mgmt: Management, settings: Settings, tenant_code: str
) -> None:
    """Mark active and restore exactly the tenant's broker rights (its password is unchanged)."""
    tenant = await registry.set_active(session, tenant_code, True)
    if tenant.broker_username is not None:
        inbox = tenant.inbox or legacy_inbox_name(tenant.code)
        await grant(mgmt, settings, tenant.broker_username, inbox=inbox)


async def open_transfers(session: AsyncSession, tenant_code: str) -> int:
    """How many transfers still wait for a step of `tenant_code` or of its counterpart."""
    query = select(func.count()).where(
        (Transfer.offerer == tenant_code) | (Transfer.receiver == tenant_code),
        Transfer.state.in_(OPEN_TRANSFER_STATES),
    )
    return int(await session.scalar(query.select_from(Transfer)) or 0)


async def _waiting(mgmt: Management, channel: AbstractChannel, settings: Settings, inbox: str | None) -> int:
    """Messages ready in `inbox` now (a passive declare: current, unlike the management API's
    statistics); 0 when it does not exist."""
    if inbox is None or await mgmt.queue(settings.vhost, inbox) is None:
        return 0
    declared = await channel.declare_queue(inbox, passive=True)
    return int(declared.declaration_result.message_count or 0)


async def remove_tenant(
    session: AsyncSession,
    mgmt: Management,
    channel: AbstractChannel,
    settings: Settings,
    tenant_code: str,
    *,
    force: bool = False,
) -> int:
    """Remove a tenant from the broker and mark it removed in the registry; returns how many
    messages were dropped with its inbox (0 unless `force`).

    Refused (`TenantBusy`) while a transfer it is part of is open (offered or accepted: it must
    be completed, cancelled, rejected or expire first), and while its inbox holds messages
    unless `force`: "drained" means its connector has read and acknowledged everything. The
    broker access is revoked and its connections closed first, so what a connector had taken
    but not acknowledged is back in the inbox and counted; refused then, its rights are
    restored as they were. Then its broker user and inbox are deleted and the registry row is
    marked removed (`registry.mark_removed`); the audit chain keeps its records."""
    tenant = await registry.get_tenant(session, tenant_code)
    if tenant.removed:
        raise registry.TenantRemoved(f"tenant {tenant.code} was already removed")
    busy = await open_transfers(session, tenant.code)
    if busy:
        raise TenantBusy(
            f"tenant {tenant.code} is part of {busy} open transfer(s); they must be completed, "
            "cancelled, rejected or expire first"
        )
    refusal = (
        "tenant {code}'s inbox still holds {n} message(s): let its connector read them, "
        "or add --force to drop them"
    )
    waiting = await _waiting(mgmt, channel, settings, tenant.inbox)
    if waiting and not force:
        raise TenantBusy(refusal.format(code=tenant.code, n=waiting))
    if tenant.broker_username is not None:
        await mgmt.clear_permissions(settings.vhost, tenant.broker_username)
        await mgmt.close_connections_of(tenant.broker_username, "tenant removed")
        waiting = await _waiting(mgmt, channel, settings, tenant.inbox)
        if waiting and not force:
            if tenant.active:
                await grant(mgmt, settings, tenant.broker_username, inbox=tenant.inbox or "")
            raise TenantBusy(refusal.format(code=tenant.code, n=waiting))
        await mgmt.delete_user(tenant.broker_username)
    if tenant.inbox is not None:
        await mgmt.delete_queue(settings.vhost, tenant.inbox)
    await registry.mark_removed(session, tenant.code)
    return waiting
