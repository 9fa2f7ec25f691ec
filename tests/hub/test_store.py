"""The store on both backends: migrations, the tenant registry, groups, tokens."""

from __future__ import annotations

import pytest

from hub import auth, registry
from hub.registry import RegistryError
from hub.seed import seed_all
from hub.store.db import Database, head_revisions
from schemas.errors import NotFound

pytestmark = pytest.mark.postgres


async def test_migrations_reach_every_head_and_are_idempotent(db: Database) -> None:
    assert await db.current_revision() == head_revisions()
    await db.migrate()
    assert await db.current_revision() == head_revisions()


async def test_seed_registers_five_tenants_and_groups(db: Database) -> None:
    async with db.session() as s, s.begin():
        tenants = await seed_all(s)
        await seed_all(s)  # twice is harmless
    assert {t.code for t in tenants} == {"GM0518", "GM0599", "GM0307", "GM0957", "ingrado"}
    async with db.session() as s:
        groups = await registry.list_groups(s)
        ingrado = await registry.get_tenant(s, "ingrado")
    assert groups["zuid-holland"] == ["GM0518", "GM0599"]
    assert len(groups["landelijk"]) == 5
    assert ingrado.kind == "association"


async def test_tenant_rules(db: Database) -> None:
    async with db.session() as s, s.begin():
        t = await registry.add_tenant(
            s, "GM0363", "Gemeente Amsterdam", "municipality", "00000001002564440000"
        )
        assert t.source_prefix == "urn:nld:oin:00000001002564440000:systeem:"
        assert t.owns_source("urn:nld:oin:00000001002564440000:systeem:leerplicht")
        assert not t.owns_source("urn:nld:cbs:GM0363:systeem:leerplicht")
        with pytest.raises(RegistryError, match="already exists"):
            await registry.add_tenant(s, "GM0363", "Amsterdam", "municipality")
        with pytest.raises(RegistryError) as bad_code:
            await registry.add_tenant(s, "Amsterdam!", "Amsterdam", "municipality")
        assert bad_code.value.field == "code"
        with pytest.raises(RegistryError) as bad_kind:
            await registry.add_tenant(s, "GM0001", "X", "school")
        assert bad_kind.value.field == "kind"
        with pytest.raises(RegistryError, match="unknown tenant"):
            await registry.add_group(s, "noord", ["GM0363", "GM9999"])
        assert await registry.add_group(s, "noord", ["GM0363"]) == ["GM0363"]
        suspended = await registry.set_active(s, "GM0363", False)
        assert not suspended.active
        with pytest.raises(NotFound):
            await registry.get_tenant(s, "GM9999")


async def test_tokens_are_stored_hashed_and_revocable(db: Database) -> None:
    async with db.session() as s, s.begin():
        await seed_all(s)
        token_id, token = await auth.issue(s, "tenant", "GM0518")
        _op_id, op_token = await auth.issue(s, "operator")
    from sqlalchemy import select

    from hub.store.models import ApiToken

    async with db.session() as s, s.begin():
        stored = list(await s.scalars(select(ApiToken.token_hash)))
        assert token not in stored and auth.hash_token(token) in stored
        who = await auth.authenticate(s, token)
        assert who is not None and who.tenant == "GM0518" and not who.is_operator
        op = await auth.authenticate(s, op_token)
        assert op is not None and op.is_operator
        assert await auth.authenticate(s, "inb_wrong") is None
        await auth.revoke(s, token_id)
    async with db.session() as s:
        assert await auth.authenticate(s, token) is None
