"""Provisioning tenants on the broker (DESIGN section 4): one RabbitMQ user per tenant that
can configure nothing, write only to the ingress and read only its own inbox.

Credentials are generated here and returned once; the hub never stores the password (the
broker keeps only its own salted hash)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from aio_pika.abc import AbstractChannel
from sqlalchemy.ext.asyncio import AsyncSession

from hub import registry
from hub.broker.management import Management
from hub.broker.topology import INGRESS, declare_inbox, inbox_name
from hub.config import Settings


@dataclass(frozen=True)
class BrokerCredentials:
    tenant: str
    username: str
    password: str
    vhost: str

    def __repr__(self) -> str:  # never print the password by accident
        return f"BrokerCredentials(tenant={self.tenant!r}, username={self.username!r}, vhost={self.vhost!r})"


def broker_username(vhost: str, tenant_code: str) -> str:
    """Users are broker-wide, so they carry the deployment's vhost to stay unique."""
    return f"{vhost}.{tenant_code}"


def permissions_for(tenant_code: str) -> dict[str, str]:
    return {
        "configure": "^$",
        "write": f"^{re.escape(INGRESS)}$",
        "read": f"^{re.escape(inbox_name(tenant_code))}$",
    }


async def provision_tenant(
    session: AsyncSession,
    mgmt: Management,
    channel: AbstractChannel,
    settings: Settings,
    tenant_code: str,
) -> BrokerCredentials:
    """Create (or re-key) the tenant's broker user and inbox. Idempotent apart from the password."""
    tenant = await registry.get_tenant(session, tenant_code)
    username = broker_username(settings.vhost, tenant.code)
    password = secrets.token_urlsafe(24)
    await declare_inbox(channel, tenant.code, settings.delivery_limit, settings.inbox_max_length)
    await mgmt.put_user(username, password)
    if tenant.active:
        perms = permissions_for(tenant.code)
        await mgmt.set_permissions(settings.vhost, username, **perms)
        # Topic permissions: the routing key a tenant publishes with is the event type only.
        await mgmt.set_topic_permissions(
            settings.vhost, username, INGRESS, write=r"^nl\.leerplicht\.[a-z_.0-9]+$", read="^$"
        )
    await registry.set_broker_username(session, tenant.code, username)
    return BrokerCredentials(tenant.code, username, password, settings.vhost)


async def suspend_tenant(
    session: AsyncSession, mgmt: Management, settings: Settings, tenant_code: str
) -> int:
    """Mark inactive, revoke broker permissions and close live connections at once."""
    tenant = await registry.set_active(session, tenant_code, False)
    if tenant.broker_username is None:
        return 0
    await mgmt.clear_permissions(settings.vhost, tenant.broker_username)
    return await mgmt.close_connections_of(tenant.broker_username, "tenant suspended")


async def reinstate_tenant(
    session: AsyncSession, mgmt: Management, settings: Settings, tenant_code: str
) -> None:
    tenant = await registry.set_active(session, tenant_code, True)
    if tenant.broker_username is not None:
        await mgmt.set_permissions(settings.vhost, tenant.broker_username, **permissions_for(tenant.code))
