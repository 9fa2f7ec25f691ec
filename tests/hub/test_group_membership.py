"""Changing a group's members (hub.registry, through hub.operator_actions) on each store
backend: added and removed once, unknown groups and tenants refused, each change audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub import operator_actions, registry
from hub.operator_actions import Actor
from hub.seed import seed_all
from hub.store.db import Database
from hub.store.models import AuditRecord
from schemas.errors import NotFound


async def test_a_member_added_and_removed_once_each_audited(db: Database) -> None:
    async with db.session() as s, s.begin():
        await seed_all(s)
    actor = Actor.web("tessa")
    async with db.session() as s, s.begin():
        assert await operator_actions.add_to_group(s, actor, "zuid-holland", "GM0307") is True
        assert await operator_actions.add_to_group(s, actor, "zuid-holland", "GM0307") is False
    async with db.session() as s:
        assert await registry.group_members(s, "zuid-holland") == ["GM0307", "GM0518", "GM0599"]
    async with db.session() as s, s.begin():
        assert await operator_actions.remove_from_group(s, actor, "zuid-holland", "GM0307") is True
        assert await operator_actions.remove_from_group(s, actor, "zuid-holland", "GM0307") is False
    async with db.session() as s:
        assert await registry.group_members(s, "zuid-holland") == ["GM0518", "GM0599"]
        records = await s.scalars(
            select(AuditRecord)
            .where(AuditRecord.subject_ref == "group:zuid-holland")
            .order_by(AuditRecord.seq)
        )
        done = [(r.activity, r.actor, r.outcome, r.recipients) for r in records]
    assert done == [
        ("add group member", "operator:web:tessa", "added", ["GM0307"]),
        ("remove group member", "operator:web:tessa", "removed", ["GM0307"]),
    ]


async def test_unknown_groups_and_tenants_are_refused(db: Database) -> None:
    async with db.session() as s, s.begin():
        await seed_all(s)
    actor = Actor.cli()
    async with db.session() as s, s.begin():
        with pytest.raises(NotFound, match="no group nowhere"):
            await operator_actions.add_to_group(s, actor, "nowhere", "GM0307")
        with pytest.raises(registry.UnknownTenants, match="GM9999"):
            await operator_actions.add_to_group(s, actor, "landelijk", "GM9999")
        with pytest.raises(NotFound, match="no group nowhere"):
            await operator_actions.remove_from_group(s, actor, "nowhere", "GM0307")
    async with db.session() as s:
        assert not list(
            await s.scalars(select(AuditRecord).where(AuditRecord.activity.like("%group member")))
        )
