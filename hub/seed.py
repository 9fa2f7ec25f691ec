"""The demo and test deployment's starting state: the five seed tenants and seed groups of
`seed.json`, and every pupil-holding tenant following Ingrado's templates. Not for production
(`inbeeld seed`); running it again adds only what is missing."""

from __future__ import annotations

import json
from importlib import resources

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import registry
from hub.store.models import Group, Subscription, Tenant, utcnow
from hub.tenants import PUPIL_KINDS, TenantInfo

__all__ = ["DEFAULT_PUBLISHER", "seed_all", "seed_subscriptions"]

DEFAULT_PUBLISHER = "ingrado"


async def seed_all(s: AsyncSession) -> list[TenantInfo]:
    """Load the five seed tenants and the seed groups (skipping what exists), then the seed
    subscriptions; returns every tenant."""
    data = json.loads(resources.files("hub").joinpath("seed.json").read_text("utf-8"))
    for t in data["tenants"]:
        if await s.get(Tenant, t["code"]) is None:
            await registry.add_tenant(s, t["code"], t["name"], t["kind"], t.get("oin"))
    for g in data["groups"]:
        if await s.get(Group, g["name"]) is None:
            await registry.add_group(s, g["name"], g["members"], g.get("description", ""))
    await seed_subscriptions(s)  # every municipality follows ingrado's templates
    return await registry.list_tenants(s)


async def seed_subscriptions(s: AsyncSession, publisher: str = DEFAULT_PUBLISHER) -> int:
    """Every municipality and regional bureau follows `publisher` (the default: Ingrado), if
    it exists; existing subscriptions are left as they are. Returns how many were added."""
    if await s.get(Tenant, publisher) is None:
        return 0
    added = 0
    followers = select(Tenant.code).where(Tenant.kind.in_(PUPIL_KINDS), Tenant.removed_at.is_(None))
    for code in await s.scalars(followers):
        if code != publisher and await s.get(Subscription, (code, publisher)) is None:
            s.add(Subscription(tenant_code=code, publisher=publisher, created_at=utcnow()))
            added += 1
    await s.flush()
    return added
