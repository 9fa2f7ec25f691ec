"""Neighbour notices end to end: connectors with keystores, local registers and group keys,
the real hub and broker. Only the tenant whose register holds the pupil answers; the others
see an index they cannot match and nothing they can decrypt; the hub's store and every body
it handled hold no BSN; closing and expiry stop answers; a membership change rotates the key."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, inspect, select, text

from connectors.group_keys import KEY_SHARED, GroupKeyring
from connectors.keystore import Keystore
from connectors.notices import FOUND, MISSING, NOTICE_TYPES, NoticeDesk, NoticeOutcome
from connectors.register import import_csv
from connectors.sealing import Sealer
from connectors.store import LocalStore
from hub import registry
from hub.api.app import create_app
from hub.store.models import AuditRecord, GroupMember
from schemas.blind_index import blind_index
from schemas.envelope import parse_event
from schemas.errors import CryptoError
from schemas.events import PupilFound
from tests.e2e.conftest import TENANTS, Party, make_directory
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys

pytestmark = pytest.mark.broker

CONTACT = {"department": "Leerplicht", "phone": "070 353 3000", "email": "leerplicht@denhaag.example"}
HEADER = (
    "bsn,given_names,family_name,birth_date,street,house_number,postcode,city,municipality,"
    "school_brin,school_name,school_level\n"
)
# Valid BSNs (11-test) and the people behind them, who must never show outside the two parties.
PUPILS = {
    "111222333": "Sanne,Voorbeeld,2014-05-17,Proefstraat,1,3011 AA,Rotterdam,GM0599,"
    "12AB,Basisschool De Proeftuin,po",
    "123456782": "Noor,Testmans,2013-02-01,Testkade,2,3011 AB,Rotterdam,GM0599,13CD,Het Proefcollege,vo",
    "234567004": "Daan,Steekproef,2012-09-09,Laan 3,3,3811 AA,Amersfoort,GM0307,14EF,De Testschool,po",
}
SECRETS = (
    "111222333",
    "123456782",
    "234567004",
    "Voorbeeld",
    "Testmans",
    "Steekproef",
    "Proefstraat",
    "Proeftuin",
)


@dataclass
class Desk:
    party: Party
    store: LocalStore
    keyring: GroupKeyring
    desk: NoticeDesk

    @property
    def code(self) -> str:
        return self.party.code


@pytest.fixture
def app(hub: RunningHub) -> FastAPI:
    return create_app(hub.settings, hub.db)


@pytest.fixture
async def desks(hub: RunningHub, app: FastAPI, tmp_path: Path) -> AsyncIterator[dict[str, Desk]]:
    out: dict[str, Desk] = {}
    for code in TENANTS:
        ks = Keystore.create(tmp_path / f"{code}.keystore", kek=os.urandom(32))
        directory = await make_directory(hub, app, code)
        party = Party(code, ks, directory, Sealer(ks, directory, code), await hub.connector(code))
        await install_keys(hub, code, ks.public_jwks())  # a fresh keystore for a seed tenant
        store = await LocalStore.open(tmp_path / f"{code}.db", ks)
        keyring = GroupKeyring(store, code, directory)
        person = {"name": f"Leerplichtambtenaar {code}", "phone": "010 267 1000"}
        desk = NoticeDesk(party.connector, party.sealer, store, keyring, contact_person=person)
        out[code] = Desk(party, store, keyring, desk)
        await hub.drain(code, quiet=0.3)
    yield out
    for d in out.values():
        await d.party.directory.api.aclose()
        await d.store.close()


@pytest.fixture
async def wiretap(hub: RunningHub) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """Every body the hub takes in and hands out in the test vhost (admin connection)."""
    conn = await aio_pika.connect(hub.settings.amqp_url_for())
    channel = await conn.channel()
    queue = await channel.declare_queue(f"wiretap-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True)
    await queue.bind("inbeeld.ingress", routing_key="#")
    for code in TENANTS:
        await queue.bind("inbeeld.delivery", routing_key=code)
    yield queue
    await conn.close()


async def tapped(queue: aio_pika.abc.AbstractQueue) -> list[bytes]:
    got: list[bytes] = []
    idle = 0
    while idle < 5:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            idle += 1
            await asyncio.sleep(0.1)
        else:
            idle = 0
            got.append(message.body)
    return got


async def hub_store_text(hub: RunningHub) -> str:
    def tables(conn: Any) -> list[str]:
        return inspect(conn).get_table_names()

    cells: list[str] = []
    async with hub.db.engine.connect() as conn:
        for table in await conn.run_sync(tables):
            for row in (await conn.execute(text(f'SELECT * FROM "{table}"'))).all():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        cells.append(bytes(value).decode("utf-8", "replace"))
                    else:
                        cells.append(str(value))
    return "\n".join(cells)


async def load_register(d: Desk, tmp_path: Path, *bsns: str) -> None:
    path = tmp_path / f"{d.code}-{uuid.uuid4().hex[:6]}.csv"
    path.write_text(HEADER + "".join(f"{b},{PUPILS[b]}\n" for b in bsns), encoding="utf-8")
    report = await import_csv(d.store, path)
    assert report.ok, report.errors


async def pump(hub: RunningHub, d: Desk, count: int) -> list[NoticeOutcome]:
    """Hand the next `count` notice and group-key events in `d`'s inbox to its desk."""
    events = await hub.receive(d.code, lambda e: e.type in NOTICE_TYPES, count=count)
    return [await d.desk.handle(e) for e in events]


def soon(days: float = 7) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


async def test_only_the_holder_answers_and_no_bsn_reaches_the_hub(
    hub: RunningHub, desks: dict[str, Desk], wiretap: aio_pika.abc.AbstractQueue, tmp_path: Path
) -> None:
    haag, rdam = desks["GM0518"], desks["GM0599"]
    await load_register(rdam, tmp_path, "111222333", "123456782")
    await load_register(desks["GM0307"], tmp_path, "234567004")

    notice_id = await haag.desk.send_missing("landelijk", "111 222 333", CONTACT, soon())
    outcomes = {code: await pump(hub, desks[code], 2) for code in ("GM0599", "GM0307", "GM0957")}
    for code, (key, asked) in outcomes.items():
        assert key.kind == "key_stored" and asked.notice_id == notice_id
        assert asked.kind == ("answered" if code == "GM0599" else "no_match"), code
    await hub.receive("ingrado", lambda e: e.type == KEY_SHARED)  # a member, but never asked

    [found] = await pump(hub, haag, 1)
    assert found.kind == "found" and found.sender == "GM0599" and isinstance(found.found, PupilFound)
    assert found.found.school is not None and found.found.school.brin == "12AB"
    assert found.found.contact.name == "Leerplichtambtenaar GM0599"
    assert (await haag.desk.get(notice_id)).found_by == ["GM0599"]  # type: ignore[union-attr]
    for code in ("GM0599", "GM0307", "GM0957", "ingrado"):
        assert not [e for e in await hub.drain(code) if e.type == FOUND]

    # Both parties' local audit logs hold the match; neither holds the BSN or the index.
    key = await haag.keyring.current("landelijk")
    assert key is not None
    index = blind_index("111222333", key.key, key.key_id).value_hex
    asked_log = await haag.desk.audit(notice_id)
    assert [(a.activity, a.counterpart, a.outcome) for a in asked_log] == [
        ("notice.asked", None, "sent"),
        ("notice.found", "GM0599", "match"),
    ]
    answered_log = await rdam.desk.audit(notice_id)
    assert [(a.activity, a.outcome) for a in answered_log] == [
        ("notice.checked", "match"),
        ("notice.answered", "sent"),
    ]
    assert all(a.pupil_ref for a in answered_log)
    assert [a.outcome for a in await desks["GM0307"].desk.audit(notice_id)] == ["no_match"]
    for d in (haag, rdam):
        assert await d.desk.verify_audit()
        logged = repr(await d.desk.audit())
        assert "111222333" not in logged and index not in logged
    # The hub's audit log has the pupil_found with both parties.
    async with hub.db.session() as s:
        answer_id = answered_log[-1].event_id
        record = await s.scalar(select(AuditRecord).where(AuditRecord.subject_ref == answer_id))
        assert record is not None and (record.sender, record.recipients) == ("GM0599", ["GM0518"])

    # Nothing of the pupil in what the hub handled or keeps; the others cannot open the answer.
    bodies = await tapped(wiretap)
    assert len(bodies) >= 8
    raw_key = base64.urlsafe_b64encode(key.key).rstrip(b"=").decode()
    for body in bodies:
        decoded = body.decode("utf-8", "replace")
        assert not [p for p in SECRETS if p.lower() in decoded.lower()]
        assert raw_key not in decoded
    stored = await hub_store_text(hub)
    assert not [p for p in SECRETS if p.lower() in stored.lower()]
    assert index not in stored and raw_key not in stored
    answers = [parse_event(b) for b in bodies if b'"nl.leerplicht.notice.pupil_found"' in b]
    assert answers
    for code in ("GM0307", "GM0957"):
        with pytest.raises(CryptoError):
            await desks[code].party.sealer.open(answers[0])


async def test_rescan_answers_and_closing_stops_it(
    hub: RunningHub, desks: dict[str, Desk], tmp_path: Path
) -> None:
    haag, rdam = desks["GM0518"], desks["GM0599"]
    first = await haag.desk.send_missing("zuid-holland", "123456782", CONTACT, soon())
    assert [o.kind for o in await pump(hub, rdam, 2)] == ["key_stored", "no_match"]
    await load_register(rdam, tmp_path, "123456782")  # the pupil registers later
    [late] = await rdam.desk.rescan()
    assert late.kind == "answered" and late.notice_id == first
    assert (await pump(hub, haag, 1))[0].kind == "found"

    second = await haag.desk.send_missing("zuid-holland", "111222333", CONTACT, soon())
    assert [o.kind for o in await pump(hub, rdam, 1)] == ["no_match"]  # same key: no new share
    await haag.desk.close(second, "withdrawn")
    assert [o.kind for o in await pump(hub, rdam, 1)] == ["closed"]
    notice = await rdam.desk.get(second, asker="GM0518")
    assert notice is not None and notice.state == "closed"
    await load_register(rdam, tmp_path, "111222333")
    assert await rdam.desk.rescan() == []  # closed: nobody looks any more
    # And if a connector answered anyway, the hub refuses it.
    pupil_ref = next(iter((await rdam.desk._index(await rdam.keyring.current("zuid-holland"))).values()))  # type: ignore[arg-type]
    forced = await rdam.desk._answer("GM0518", second, pupil_ref)
    [rejection] = await hub.receive(
        "GM0599", lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] == forced.id
    )
    assert rejection.data["reason"] == "invalid_transition"
    assert not [e for e in await hub.drain("GM0518") if e.type == FOUND]


async def test_a_notice_matched_twice_at_once_is_answered_once(
    hub: RunningHub, desks: dict[str, Desk], tmp_path: Path
) -> None:
    # The runtime rescans when a group key arrives, while the inbox goes on with the notice sent
    # under it: both match the same notice at the same moment. Only one of them may answer.
    haag, rdam = desks["GM0518"], desks["GM0599"]
    notice_id = await haag.desk.send_missing("zuid-holland", "123456782", CONTACT, soon())
    assert [o.kind for o in await pump(hub, rdam, 2)] == ["key_stored", "no_match"]
    await load_register(rdam, tmp_path, "123456782")
    first, second = await asyncio.gather(rdam.desk.rescan(), rdam.desk.rescan())
    assert sorted(o.kind for o in [*first, *second]) == ["answered", "duplicate"]
    assert [o.notice_id for o in (await pump(hub, haag, 1))] == [notice_id]
    await asyncio.sleep(0.5)
    assert not [e for e in await hub.drain("GM0518") if e.type == FOUND]
    assert await rdam.desk.rescan() == []  # answered: nothing left to match
    # Both checks were audited, chained one after the other (prev_hash is unique: no fork).
    checks = [a.outcome for a in await rdam.desk.audit(notice_id) if a.activity == "notice.checked"]
    assert checks == ["no_match", "match", "match"]
    assert await rdam.desk.verify_audit()


async def test_notices_expire_at_their_deadline(
    hub: RunningHub, desks: dict[str, Desk], tmp_path: Path
) -> None:
    haag, rdam = desks["GM0518"], desks["GM0599"]
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    notice_id = await haag.desk.send_missing("zuid-holland", "123456782", CONTACT, deadline)
    assert [o.kind for o in await pump(hub, rdam, 2)] == ["key_stored", "no_match"]
    after = deadline + timedelta(seconds=1)
    assert await rdam.desk.expire(now=after.timestamp()) == [notice_id]
    assert await haag.desk.expire(now=after.timestamp()) == [notice_id]
    await hub.router.sweep(now=after)
    await load_register(rdam, tmp_path, "123456782")
    assert await rdam.desk.rescan() == []
    assert (await haag.desk.get(notice_id)).state == "expired"  # type: ignore[union-attr]
    assert (await rdam.desk.get(notice_id, asker="GM0518")).state == "expired"  # type: ignore[union-attr]


async def test_a_membership_change_rotates_the_group_key(
    hub: RunningHub, desks: dict[str, Desk], tmp_path: Path
) -> None:
    haag, rdam, amf = desks["GM0518"], desks["GM0599"], desks["GM0307"]
    group = f"nt-{uuid.uuid4().hex[:8]}"
    async with hub.db.session() as s, s.begin():
        await registry.add_group(s, group, ["GM0518", "GM0599", "GM0307"])
    await load_register(amf, tmp_path, "234567004")

    first = await haag.desk.send_missing(group, "234567004", CONTACT, soon())
    assert [o.kind for o in await pump(hub, amf, 2)] == ["key_stored", "answered"]
    assert [o.kind for o in await pump(hub, rdam, 2)] == ["key_stored", "no_match"]
    assert (await pump(hub, haag, 1))[0].notice_id == first
    old = await haag.keyring.current(group)

    async with hub.db.session() as s, s.begin():  # Amersfoort leaves the group
        await s.execute(
            delete(GroupMember).where(GroupMember.group_name == group, GroupMember.tenant_code == "GM0307")
        )

    second = await haag.desk.send_missing(group, "234567004", CONTACT, soon())
    new = await haag.keyring.current(group)
    assert old is not None and new is not None and new.key_id != old.key_id
    assert new.members == ("GM0518", "GM0599")
    events = await hub.receive("GM0599", lambda e: e.type in NOTICE_TYPES, count=2)
    assert [e.type for e in events] == [KEY_SHARED, MISSING]
    assert [(await rdam.desk.handle(e)).kind for e in events] == ["key_stored", "no_match"]
    assert (await rdam.keyring.current(group)).key_id == new.key_id  # type: ignore[union-attr]
    assert not [e for e in await hub.drain("GM0307") if e.type in NOTICE_TYPES]
    # Even holding the new notice, the former member cannot match it: it lacks the key.
    outcome = await amf.desk.handle(events[1])
    assert outcome.kind == "no_key" and outcome.notice_id == second
    assert await amf.keyring.by_id(new.key_id) is None
