"""The processing log keeps one hash chain per tenant: each verifies on its own, a tampered
one is named (by the API and by `inbeeld doctor`) while the others still verify, the records of
the one chain from before are kept as the `legacy` chain, and writers at once never conflict."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from hub import audit, auth, doctor
from hub.api.app import create_app
from hub.store.db import Database, alembic_config, head_revisions
from hub.store.models import AuditRecord, UTCDateTime
from schemas.audit_chain import GENESIS, genesis, link
from tests.conftest import base_settings
from tests.utils.hubs import RunningHub

CHAINS_REVISION = "0017"


async def _append(
    db: Database, sender: str | None, n: int, recipients: tuple[str, ...] = ("GM0599",)
) -> None:
    async with db.session() as s, s.begin():
        await audit.append_many(
            s,
            [
                audit.Entry(
                    "route ping", "hub-router", "routed", sender, recipients, f"e-{uuid.uuid4().hex[:8]}"
                )
                for _ in range(n)
            ],
        )


async def _tamper(db: Database, chain: str, nth: int) -> int:
    """Change the outcome of the `nth` record of `chain`; returns its seq."""
    async with db.session() as s, s.begin():
        seqs = list(
            await s.scalars(
                select(AuditRecord.seq).where(AuditRecord.chain == chain).order_by(AuditRecord.seq)
            )
        )
        await s.execute(update(AuditRecord).where(AuditRecord.seq == seqs[nth]).values(outcome="rejected:x"))
    return seqs[nth]


async def _tampered_log(db: Database) -> int:
    """Records about GM0518, GM0599 and the hub as a whole; one of GM0518's altered."""
    await _append(db, "GM0518", 3)
    await _append(db, "GM0599", 2, ("GM0518",))
    await _append(db, None, 2, ("GM0518", "GM0599"))  # about several tenants: the hub's chain
    return await _tamper(db, "tenant:GM0518", 1)


pytestmark = pytest.mark.postgres


async def test_each_tenant_has_a_chain_of_its_own(db: Database) -> None:
    await _append(db, "GM0518", 3)
    await _append(db, None, 1, ("GM0307",))  # an operator action about one tenant: its chain
    await _append(db, None, 2, ())  # about no tenant: the hub's chain
    async with db.session() as s:
        report = await audit.verify(s)
        rows = (
            await s.execute(select(AuditRecord.chain, AuditRecord.prev_hash).order_by(AuditRecord.seq))
        ).all()
    assert report.intact and report.records == 6
    assert [(c.key, c.records) for c in report.chains] == [
        ("hub", 2),
        ("tenant:GM0307", 1),
        ("tenant:GM0518", 3),
    ]
    # Each chain starts at its own genesis, so prev_hash stays unique over the whole log.
    firsts = {chain: prev for chain, prev in reversed(rows)}
    assert firsts == {c: genesis(c) for c in ("hub", "tenant:GM0307", "tenant:GM0518")}


async def test_a_tampered_chain_is_named_and_the_others_still_verify(db: Database) -> None:
    bad_seq = await _tampered_log(db)
    async with db.session() as s:
        report = await audit.verify(s)
    assert not report.intact
    assert [(c.key, c.first_bad_seq) for c in report.broken] == [("tenant:GM0518", bad_seq)]
    assert report.first_bad_seq == bad_seq
    others = {c.key: c for c in report.chains if c.key != "tenant:GM0518"}
    assert set(others) == {"hub", "tenant:GM0599"} and all(c.intact for c in others.values())
    assert (others["hub"].records, others["tenant:GM0599"].records) == (2, 2)


async def test_a_record_moved_to_another_chain_breaks_both(db: Database) -> None:
    await _append(db, "GM0518", 2)
    await _append(db, "GM0599", 2)
    first = await _tamper(db, "tenant:GM0518", 0)
    async with db.session() as s, s.begin():  # undo the outcome, then move the record
        await s.execute(update(AuditRecord).where(AuditRecord.seq == first).values(outcome="routed"))
        await s.execute(update(AuditRecord).where(AuditRecord.seq == first).values(chain="tenant:GM0599"))
    async with db.session() as s:
        report = await audit.verify(s)
    assert {c.key for c in report.broken} == {"tenant:GM0518", "tenant:GM0599"}


@pytest.mark.broker
async def test_the_api_names_the_broken_chain(db: Database) -> None:
    bad_seq = await _tampered_log(db)
    async with db.session() as s, s.begin():
        _, token = await auth.issue(s, "operator", None, "chains test")
    app = create_app(base_settings(database_url=db.url), db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as api:
        r = await api.get("/audit/verify", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["intact"] is False and body["first_bad_seq"] == bad_seq
    assert body["broken"] == ["tenant:GM0518"]
    chains = {c["chain"]: c for c in body["chains"]}
    assert chains["tenant:GM0518"] == {
        "chain": "tenant:GM0518",
        "intact": False,
        "records": 2,
        "first_bad_seq": bad_seq,
    }
    assert chains["tenant:GM0599"]["intact"] and chains["tenant:GM0599"]["records"] == 2
    # The verification itself went on the hub's chain, which still verifies.
    assert chains["hub"]["intact"] and chains["hub"]["records"] == 2


@pytest.mark.broker
async def test_doctor_names_the_broken_chain(db: Database) -> None:
    bad_seq = await _tampered_log(db)
    # No such vhost: the broker checks fail at once, the store's still run.
    settings = base_settings(vhost=f"inbeeld-test-none-{uuid.uuid4().hex[:6]}", database_url=db.url)
    checks = {c.name: c for c in await doctor.run_checks(settings, probe=False)}
    chain = checks["audit chain"]
    assert chain.status == "fail"
    assert chain.detail == f"chain tenant:GM0518 broken at record {bad_seq}; 2 of 3 chains intact"
    await _append(db, "GM0599", 1)  # the broken chain stays broken; nothing else changes
    async with db.session() as s:
        assert [c.key for c in (await audit.verify(s)).broken] == ["tenant:GM0518"]


# -- records from before revision 0017 ----------------------------------------------------------


def _upgrade_without_chains(connection: Connection) -> None:
    """Every head but the chains' revision (and whatever builds on it): a store as it was."""
    cfg = alembic_config(connection)
    script = ScriptDirectory.from_config(cfg)
    for head in script.get_heads():
        if CHAINS_REVISION not in {r.revision for r in script.iterate_revisions(head, "base")}:
            command.upgrade(cfg, head)


_OLD_AUDIT_LOG = sa.table(  # audit_log before revision 0017: no chain column
    "audit_log",
    sa.column("time", UTCDateTime()),
    sa.column("trace_id", sa.String()),
    sa.column("span_id", sa.String()),
    sa.column("activity", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("subject_ref", sa.String()),
    sa.column("sender", sa.String()),
    sa.column("recipients", sa.JSON()),
    sa.column("outcome", sa.String()),
    sa.column("end_time", UTCDateTime()),
    sa.column("status_code", sa.Integer()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


async def test_records_from_before_per_tenant_chains_verify_as_the_legacy_chain(database_url: str) -> None:
    db = Database(database_url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade_without_chains)
        assert CHAINS_REVISION not in await db.current_revision()
        # The one chain as the hub wrote it: about several tenants and the hub, one record
        # with the Logboek fields and one without.
        rows, prev = [], GENESIS
        for i, (sender, logboek) in enumerate(
            [("GM0518", False), ("GM0599", True), (None, True), ("GM0518", True)]
        ):
            when = datetime(2026, 11, 30, 12, i, tzinfo=UTC)
            row: dict[str, object] = {
                "time": when,
                "trace_id": None,
                "span_id": None,
                "activity": "route ping" if sender else "verify audit chain",
                "actor": "hub-router" if sender else "operator:cli:root",
                "subject_ref": f"old-{i}",
                "sender": sender,
                "recipients": ["GM0307"] if sender else [],
                "outcome": "routed" if sender else "intact",
                "end_time": when if logboek else None,
                "status_code": 1 if logboek else None,
            }
            fields = {k: v for k, v in row.items() if v is not None or k not in ("end_time", "status_code")}
            fields["time"] = when.isoformat()
            if logboek:
                fields["end_time"] = when.isoformat()
            row["prev_hash"], row["hash"] = prev, link(prev, fields)
            prev = str(row["hash"])
            rows.append(row)
        async with db.session() as s, s.begin():
            await s.execute(sa.insert(_OLD_AUDIT_LOG), rows)

        await db.migrate()
        assert await db.current_revision() == head_revisions()
        async with db.session() as s:
            report = await audit.verify(s)
        assert report.intact and [(c.key, c.records) for c in report.chains] == [("legacy", 4)]

        await _append(db, "GM0518", 2)  # new records go on the tenant's chain, not the old one
        async with db.session() as s:
            report = await audit.verify(s)
        assert report.intact and [(c.key, c.records) for c in report.chains] == [
            ("legacy", 4),
            ("tenant:GM0518", 2),
        ]
        bad = await _tamper(db, "legacy", 2)
        async with db.session() as s:
            report = await audit.verify(s)
        assert [(c.key, c.first_bad_seq) for c in report.broken] == [("legacy", bad)]
        assert [c.intact for c in report.chains if c.key == "tenant:GM0518"] == [True]
    finally:
        await db.close()


# -- writers at once ------------------------------------------------------------------------------

SENDERS = ("GM0001", "GM0002", "GM0003", "GM0004")


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_three_writers_at_once_wait_for_each_other_and_never_retry(database_url: str) -> None:
    """Three routers' stores (each its own pool), each appending batches about the same four
    tenants and keeping its transaction open a moment after: they overlap on every chain, and
    each waits its turn instead of inserting on a stale head and retrying."""
    setup = Database(database_url)
    await setup.migrate()
    writers = [Database(database_url) for _ in range(3)]
    batches, size = 15, 8

    async def write(db: Database) -> list[int]:
        retries = []
        for b in range(batches):
            entries = [
                audit.Entry("route ping", "hub-router", "routed", SENDERS[i % 4], ("GM0005",), f"{b}-{i}")
                for i in range(size)
            ]
            async with db.session() as s, s.begin():
                appended = await audit.append_many(s, entries)
                await asyncio.sleep(0.005)  # the rest of a router's transaction
            retries.append(appended.retries)
        return retries

    try:
        results = await asyncio.gather(*(write(w) for w in writers))
        async with setup.session() as s:
            report = await audit.verify(s)
            per_chain = dict(
                (await s.execute(select(AuditRecord.chain, func.count()).group_by(AuditRecord.chain))).all()
            )
    finally:
        for w in writers:
            await w.close()
        await setup.close()
    assert [sum(r) for r in results] == [0, 0, 0]
    assert report.intact and report.records == 3 * batches * size
    assert per_chain == {f"tenant:{c}": 3 * batches * size // 4 for c in SENDERS}


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.parametrize("hub", ["postgres"], indirect=True)
async def test_three_routers_route_at_once_on_one_store(hub: RunningHub) -> None:
    """Two more routers beside the hub's own, each with its own pool on the one PostgreSQL
    store, drain the router queue together: every event arrives once, each router routed
    some, and every chain verifies with one record per event."""
    from hub.router import Router

    extra = [Router(hub.settings, Database(hub.settings.database_url)) for _ in range(2)]
    senders = ("GM0518", "GM0307", "GM0957")
    per_sender = 40
    async with hub.db.session() as s:
        before = dict(
            (
                await s.execute(
                    select(AuditRecord.chain, func.count())
                    .where(AuditRecord.activity == "route ping")
                    .group_by(AuditRecord.chain)
                )
            ).all()
        )
    routers = [hub.router, *extra]
    handled_before = [r.handled for r in routers]
    for r in extra:
        await r.start()
    try:
        connectors = {c: await hub.connector(c) for c in senders}
        sent = await asyncio.gather(
            *(
                connectors[c].send("nl.leerplicht.ping", {"text": f"chains {i}"}, ["GM0599"])
                for i in range(per_sender)
                for c in senders
            )
        )
        ids = {e.id for e in sent}
        got = await hub.receive("GM0599", lambda e: e.id in ids, count=len(ids), timeout=120)
    finally:
        for r in extra:
            await r.stop()
            await r.db.close()
    assert sorted(e.id for e in got) == sorted(ids)
    handled = [r.handled - h for r, h in zip(routers, handled_before, strict=True)]
    assert sum(1 for h in handled if h > 0) >= 2, handled  # they really ran at once
    async with hub.db.session() as s:
        report = await audit.verify(s)
        after = dict(
            (
                await s.execute(
                    select(AuditRecord.chain, func.count())
                    .where(AuditRecord.activity == "route ping")
                    .group_by(AuditRecord.chain)
                )
            ).all()
        )
    assert report.intact, report.broken
    for c in senders:
        assert after[f"tenant:{c}"] - before.get(f"tenant:{c}", 0) == per_sender
