"""The processing log: every routing decision is chained; tampering is detected."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select, update

from hub import audit
from hub.store.db import Database
from hub.store.models import AuditRecord
from schemas.audit_chain import GENESIS, link
from schemas.processing_log import STATUS_ERROR, STATUS_OK, processing_activity_id
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker


async def test_chain_detects_an_edited_record(db: Database) -> None:
    async with db.session() as s, s.begin():
        for i in range(5):
            await audit.append(
                s,
                activity="route ping",
                actor="test",
                outcome="routed",
                sender="GM0518",
                recipients=["GM0599"],
                subject_ref=f"e{i}",
                traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
            )
    async with db.session() as s:
        report = await audit.verify(s)
    assert report.intact and report.records == 5
    async with db.session() as s, s.begin():
        await s.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(outcome="rejected:x"))
    async with db.session() as s:
        report = await audit.verify(s)
    assert not report.intact and report.first_bad_seq == 3


async def test_router_decisions_are_audited(hub: RunningHub) -> None:
    den_haag = await hub.connector("GM0518")
    ok = await den_haag.send("nl.leerplicht.ping", {"text": "audit me"}, ["GM0599"])
    bad = await den_haag.send("nl.leerplicht.ping", {"text": "nobody"}, ["GM9999"])
    await hub.receive("GM0599", lambda e: e.id == ok.id)
    await hub.receive("GM0518", lambda e: e.type.endswith("hub.rejected") and e.data["event_id"] == bad.id)
    async with hub.db.session() as s:
        records = {r.subject_ref: r for r in await audit.records_for(s, "GM0518", 1000)}
        report = await audit.verify(s)
    assert records[ok.id].outcome == "routed" and records[ok.id].recipients == ["GM0599"]
    assert records[bad.id].outcome == "rejected:unknown_recipient"
    assert report.intact and report.records >= 2


async def test_records_from_before_the_logboek_fields_still_verify_beside_new_ones(db: Database) -> None:
    """A record written before revision 0014 (its Logboek fields empty, its hash over the
    older fields only) and records with those fields verify, each on its chain; editing a new
    field of a new record breaks its chain there."""
    old_fields = {
        "time": "2026-11-01T12:00:00+00:00",
        "trace_id": "a" * 32,
        "span_id": "b" * 16,
        "activity": "route ping",
        "actor": "hub-router",
        "subject_ref": "old-1",
        "sender": "GM0518",
        "recipients": ["GM0599"],
        "outcome": "routed",
    }
    async with db.session() as s, s.begin():
        s.add(
            AuditRecord(
                chain=audit.LEGACY,  # before revision 0017: the one chain
                time=datetime.fromisoformat(old_fields["time"]),
                trace_id=old_fields["trace_id"],
                span_id=old_fields["span_id"],
                activity="route ping",
                actor="hub-router",
                subject_ref="old-1",
                sender="GM0518",
                recipients=["GM0599"],
                outcome="routed",
                prev_hash=GENESIS,
                hash=link(GENESIS, old_fields),
            )
        )
    traceparent = "00-" + "c" * 32 + "-" + "d" * 16 + "-01"
    async with db.session() as s, s.begin():
        await audit.append(
            s,
            activity="route transfer.offered",
            actor="hub-router",
            outcome="routed",
            sender="GM0518",
            recipients=["GM0599"],
            subject_ref="new-1",
            traceparent=traceparent,
            span=("c" * 32, "e" * 16),
            processing_activity_id=processing_activity_id("nl.leerplicht.transfer.offered"),
        )
        await audit.append(
            s, activity="route ping", actor="hub-router", outcome="rejected:x", sender="GM0518"
        )
    async with db.session() as s:
        report = await audit.verify(s)
        new = (await s.scalars(select(AuditRecord).where(AuditRecord.subject_ref == "new-1"))).one()
    assert report.intact and report.records == 3
    # the hub's own operation, the sender's as its parent, the standard's status and activity
    assert (new.trace_id, new.span_id, new.parent_span_id) == ("c" * 32, "e" * 16, "d" * 16)
    assert new.status_code == STATUS_OK and new.end_time is not None and new.end_time >= new.time
    assert new.processing_activity_id == "urn:nld:inbeeld:verwerkingsactiviteit:transfer"
    async with db.session() as s, s.begin():
        await s.execute(
            update(AuditRecord).where(AuditRecord.seq == new.seq).values(status_code=STATUS_ERROR)
        )
    async with db.session() as s:
        report = await audit.verify(s)
    assert not report.intact and report.first_bad_seq == new.seq
