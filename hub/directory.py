"""The router's view of the tenant directory: tenants, their broker users and groups, kept in
memory and reloaded when stale (`hub.routing.Directory`)."""

from __future__ import annotations

import asyncio

from hub import metrics, registry
from hub.store.db import Database
from hub.tenants import TenantInfo

DIRECTORY_TTL = 1.0  # seconds the directory (tenants, broker users, groups) is reused


class CachedDirectory:
    """`hub.routing.Directory` from an in-memory copy of tenants and groups, reloaded when it
    is older than `ttl` seconds (checked once per batch) and when an address is not found;
    group membership is also reloaded for every batch that routes by group. With 400 tenants
    a full reload per batch cost more than the batch's own routing."""

    def __init__(self, db: Database, ttl: float = DIRECTORY_TTL) -> None:
        self.db = db
        self.ttl = ttl
        self._tenants: dict[str, TenantInfo] = {}
        self._by_user: dict[str, TenantInfo] = {}
        self._unknown: set[str] = set()
        self._groups: dict[str, list[str]] = {}
        self._member_of: dict[str, list[str]] = {}
        self._loaded = float("-inf")

    async def reload(self) -> None:
        async with self.db.session() as s:
            self._tenants = {t.code: t for t in await registry.list_tenants(s)}
        self._by_user = {t.broker_username: t for t in self._tenants.values() if t.broker_username}
        self._unknown = set()
        await self.reload_groups()
        self._loaded = asyncio.get_running_loop().time()
        metrics.directory_loaded.set_to_current_time()

    async def reload_groups(self) -> None:
        """Group membership afresh: done for every batch that routes by group, so a member
        that left gets nothing more from the moment it was removed."""
        async with self.db.session() as s:
            groups = await registry.list_groups(s)
        member_of: dict[str, list[str]] = {}
        for name, members in groups.items():
            for code in members:
                member_of.setdefault(code, []).append(name)
        self._groups, self._member_of = groups, member_of

    async def refresh(self) -> None:
        if asyncio.get_running_loop().time() - self._loaded > self.ttl:
            await self.reload()

    async def by_broker_user(self, user: str) -> TenantInfo | None:
        """The tenant whose broker user published a message (the broker vouches for user_id)."""
        await self.refresh()
        tenant = self._by_user.get(user)
        if tenant is None and user not in self._unknown:
            await self.reload()  # provisioned since the last load?
            tenant = self._by_user.get(user)
            if tenant is None:
                self._unknown.add(user)  # until the next reload: no query per message
        return tenant

    async def tenant(self, code: str) -> TenantInfo | None:
        """The tenant `code`; looked up afresh when it is unknown here or suspended here, so a
        tenant added or reinstated a moment ago is routed to at once. (An event addressed to a
        suspended tenant is refused; the reload costs no more than that refusal does.)"""
        info = self._tenants.get(code)
        if info is None or not info.active:
            await self.reload()
        return self._tenants.get(code)

    async def group_members(self, name: str) -> list[str] | None:
        if name not in self._groups:
            await self.reload()
        return self._groups.get(name)

    async def groups_of(self, code: str) -> list[str]:
        return self._member_of.get(code, [])
