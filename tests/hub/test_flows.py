"""The console's flow queries (hub.flows) on each store backend: events per flow and outcome in
a window, stuck transfers with their timelines, notices per state, the catalogue per publisher
and the last recorded verification of the audit chain."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hub import flows, operator_actions
from hub.operator_actions import Actor
from hub.seed import seed_all
from hub.store.db import Database
from hub.store.models import LedgerEvent, Notice, PublishedTemplate, Transfer, TransferStep, utcnow


def _event(event_type: str, status: str, minutes_ago: int) -> LedgerEvent:
    return LedgerEvent(
        event_id=uuid.uuid4().hex,
        source="urn:test",
        type=event_type,
        sender="GM0518",
        status=status,
        received_at=utcnow() - timedelta(minutes=minutes_ago),
    )


def test_a_flow_is_the_first_part_of_the_type() -> None:
    assert flows.flow_of("nl.leerplicht.transfer.offered") == "transfer"
    assert flows.flow_of("nl.leerplicht.ping") == "ping"
    assert flows.flow_of("org.example.thing") == "org"


async def test_events_per_flow_and_outcome_in_a_window(db: Database) -> None:
    async with db.session() as s, s.begin():
        s.add_all(
            [
                _event("nl.leerplicht.transfer.offered", "routed", 5),
                _event("nl.leerplicht.transfer.accepted", "routed", 10),
                _event("nl.leerplicht.transfer.offered", "rejected", 20),
                _event("nl.leerplicht.ping", "received", 30),
                _event("nl.leerplicht.notice.pupil_missing", "routed", 120),  # outside the hour
                _event("nl.leerplicht.ping", "routed", 60 * 25),  # outside the day
            ]
        )
    now = utcnow()
    async with db.session() as s:
        hour = await flows.events_by_flow(s, now - timedelta(hours=1))
        day = await flows.events_by_flow(s, now - timedelta(days=1))
    assert hour == {
        "ping": {"routed": 0, "rejected": 0, "received": 1},
        "transfer": {"routed": 2, "rejected": 1, "received": 0},
    }
    assert list(day) == ["notice", "ping", "transfer"]
    assert day["notice"] == {"routed": 1, "rejected": 0, "received": 0}
    assert day["ping"]["routed"] == 0


async def test_stuck_transfers_come_with_their_timelines(db: Database) -> None:
    now = utcnow()
    async with db.session() as s, s.begin():
        await seed_all(s)
        for tid, state, age in (("tr-GM0518-old", "accepted", 12), ("tr-GM0518-new", "offered", 1)):
            offered = now - timedelta(days=age + 1)
            s.add(
                Transfer(
                    transfer_id=tid,
                    offerer="GM0518",
                    receiver="GM0599",
                    state=state,
                    offered_at=offered,
                    deadline_at=offered + timedelta(days=14),
                    updated_at=now - timedelta(days=age),
                )
            )
            await s.flush()
            s.add(
                TransferStep(transfer_id=tid, step="offered", actor="GM0518", at=offered, event_id=f"{tid}-1")
            )
            if state == "accepted":
                s.add(
                    TransferStep(
                        transfer_id=tid,
                        step="accepted",
                        actor="rblwest",
                        acted_for="GM0599",
                        at=now - timedelta(days=age),
                        event_id=f"{tid}-2",
                    )
                )
        s.add(
            Transfer(
                transfer_id="tr-GM0518-done",
                offerer="GM0518",
                receiver="GM0599",
                state="completed",
                offered_at=now - timedelta(days=40),
                deadline_at=now - timedelta(days=26),
                updated_at=now - timedelta(days=30),
            )
        )
    async with db.session() as s:
        stuck = await flows.stuck_transfers(s, now, 7)
        none = await flows.stuck_transfers(s, now, 20)
        counts = await flows.transfer_counts(s)
    assert [x.transfer.transfer_id for x in stuck] == ["tr-GM0518-old"]  # a closed one is never stuck
    assert [(x.step, x.actor, x.acted_for) for x in stuck[0].steps] == [
        ("offered", "GM0518", None),
        ("accepted", "rblwest", "GM0599"),
    ]
    assert none == []
    assert counts["offered"] == 1 and counts["accepted"] == 1 and counts["completed"] == 1
    assert counts["expired"] == 0


async def test_notices_per_state_and_the_catalogue_per_publisher(db: Database) -> None:
    now = utcnow()
    async with db.session() as s, s.begin():
        for i, state in enumerate(("open", "open", "closed")):
            s.add(Notice(asker="GM0518", notice_id=f"n{i}", event_id=f"e{i}", state=state, deadline=now))
        for template_id, version, publisher, withdrawn in (
            ("kwijt", "1", "ingrado", None),
            ("kwijt", "2", "ingrado", now),
            ("langs", "1", "GM0518", None),
        ):
            s.add(
                PublishedTemplate(
                    template_id=template_id,
                    version=version,
                    publisher=publisher,
                    title=f"{template_id} {version}",
                    languages=["nl", "en"],
                    digest="0" * 64,
                    event_id=uuid.uuid4().hex,
                    withdrawn_at=withdrawn,
                )
            )
    async with db.session() as s:
        notices = await flows.notice_counts(s)
        catalogue = await flows.catalogue_by_publisher(s)
    assert notices == {"open": 2, "closed": 1, "expired": 0}
    assert list(catalogue) == ["GM0518", "ingrado"]
    assert [(e.template_id, e.version, e.withdrawn_at is not None) for e in catalogue["ingrado"]] == [
        ("kwijt", "1", False),
        ("kwijt", "2", True),
    ]
    assert catalogue["GM0518"][0].languages == ["nl", "en"]


async def test_the_last_verification_is_the_last_one_recorded(db: Database) -> None:
    async with db.session() as s:
        assert await flows.last_verification(s) is None
    async with db.session() as s, s.begin():
        await operator_actions.verify_chain(s, Actor.token(7))
    async with db.session() as s, s.begin():
        await operator_actions.verify_chain(s, Actor.web("tessa"))
    async with db.session() as s:
        last = await flows.last_verification(s)
    assert last is not None
    assert (last.intact, last.outcome, last.actor) == (True, "intact", "operator:web:tessa")
    assert utcnow() - last.at < timedelta(minutes=1)
