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

import re
import secrets
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel
from sqlalchemy.ext.asyncio import AsyncSession

from hub import registry
from hub.broker.management import Management
from hub.broker.topology import INGRESS, declare_inbox, legacy_inbox_name, new_inbox_name
from hub.config import Settings
from schemas.errors import InbeeldError

# The routing key a tenant publishes with is the event type only.
TOPIC_WRITE = r"^nl\.leerplicht\.[a-z_.0-9]+$"


class ProvisioningError(InbeeldError):
    reason = "provisioning_error"


@dataclass(frozen=True)
class BrokerCredentials:
    tenant: str
    username: str
    password: str
    vhost: str
    inbox: str | None = None  # the queue the tenant consumes; None only for an unmigrated one

    def __repr__(self) -> str:  # never print the password by accident
        return f"BrokerCredentials(tenant={self.tenant!r}, username={self.username!r}, vhost={self.vhost!r})"


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
