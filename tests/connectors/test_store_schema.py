"""The connector store's schema and its alembic history: a fresh store is created at head, a
store made by the code before the history existed is adopted in place with its rows, the
models equal what the migrations build, and the notice audit chain is re-linked under the one
chain form only if it verifies under the old one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from connectors.notices import verify_notice_audit
from connectors.schema import metadata
from connectors.store import BASELINE, LocalStore, StoreMigrationError, head_revision
from schemas.audit_chain import GENESIS, AuditChainBroken, link

# The DDL the connector ran before its store had a history: `LocalStore.open` made the first
# six tables on every open; notices, templates and group keys made theirs on first use.
OLD_STORE_DDL = [
    """CREATE TABLE received (
        source VARCHAR(200) NOT NULL, event_id VARCHAR(64) NOT NULL, type VARCHAR(100) NOT NULL,
        sequence INTEGER, received_at FLOAT NOT NULL, PRIMARY KEY (source, event_id))""",
    """CREATE TABLE state ("key" VARCHAR(64) NOT NULL, value TEXT NOT NULL, PRIMARY KEY ("key"))""",
    """CREATE TABLE outbox (
        id INTEGER NOT NULL, sink VARCHAR(64) NOT NULL, event_source VARCHAR(200) NOT NULL,
        event_id VARCHAR(64) NOT NULL, event_type VARCHAR(100) NOT NULL, body BLOB NOT NULL,
        wrapped_key VARCHAR(200), status VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL,
        created_at FLOAT NOT NULL, next_attempt_at FLOAT NOT NULL, last_error VARCHAR(500),
        delivered_at FLOAT, stuck_reported INTEGER NOT NULL, PRIMARY KEY (id),
        UNIQUE (sink, event_source, event_id))""",
    """CREATE TABLE templates (
        template_id VARCHAR(64) NOT NULL, version VARCHAR(64) NOT NULL,
        publisher VARCHAR(32) NOT NULL, bundle TEXT NOT NULL, received_at FLOAT NOT NULL,
        PRIMARY KEY (template_id, version))""",
    """CREATE TABLE hub_replies (
        event_id VARCHAR(64) NOT NULL, kind VARCHAR(16) NOT NULL, about VARCHAR(64) NOT NULL,
        reason VARCHAR(32), message VARCHAR(500), field VARCHAR(100), recipient VARCHAR(32),
        received_at FLOAT NOT NULL, PRIMARY KEY (event_id))""",
    """CREATE TABLE pupils (
        id VARCHAR(36) NOT NULL, bsn_index VARCHAR(64) NOT NULL, wrapped_key VARCHAR(200) NOT NULL,
        bsn BLOB NOT NULL, given_names BLOB NOT NULL, family_name_prefix BLOB,
        family_name BLOB NOT NULL, birth_date BLOB NOT NULL, address BLOB NOT NULL, school BLOB,
        updated_at FLOAT NOT NULL, PRIMARY KEY (id), UNIQUE (bsn_index))""",
]
OLD_FIRST_USE_DDL = [
    """CREATE TABLE notices (
        asker VARCHAR(32) NOT NULL, notice_id VARCHAR(64) NOT NULL, role VARCHAR(8) NOT NULL,
        addressed TEXT NOT NULL, key_id VARCHAR(128) NOT NULL, secret_blob BLOB,
        wrapped_key VARCHAR(200), state VARCHAR(8) NOT NULL, deadline FLOAT NOT NULL,
        created_at FLOAT NOT NULL, closed_at FLOAT, answered INTEGER NOT NULL,
        found_by TEXT NOT NULL, event_id VARCHAR(64) NOT NULL, PRIMARY KEY (asker, notice_id))""",
    """CREATE TABLE notice_audit (
        seq INTEGER NOT NULL, at FLOAT NOT NULL, activity VARCHAR(32) NOT NULL,
        notice_id VARCHAR(64) NOT NULL, asker VARCHAR(32) NOT NULL, counterpart VARCHAR(32),
        event_id VARCHAR(64), outcome VARCHAR(32) NOT NULL, pupil_ref VARCHAR(36),
        prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL, PRIMARY KEY (seq),
        UNIQUE (prev_hash), UNIQUE (hash))""",
    """CREATE TABLE template_withdrawals (
        template_id VARCHAR(64) NOT NULL, version VARCHAR(64) NOT NULL,
        publisher VARCHAR(32) NOT NULL, reason VARCHAR(200) NOT NULL, event_id VARCHAR(64) NOT NULL,
        withdrawn_at FLOAT NOT NULL, PRIMARY KEY (template_id, version))""",
    """CREATE TABLE group_keys (
        group_name VARCHAR(63) NOT NULL, key_id VARCHAR(128) NOT NULL, creator VARCHAR(32) NOT NULL,
        members TEXT NOT NULL, key_blob BLOB NOT NULL, wrapped_key VARCHAR(200) NOT NULL,
        created_at FLOAT NOT NULL, retired_at FLOAT, PRIMARY KEY (group_name, key_id))""",
]

AUDITED = ("at", "activity", "notice_id", "asker", "counterpart", "event_id", "outcome", "pupil_ref")


def old_link(prev: str, fields: list[Any]) -> str:
    """How the connector linked its notice audit before the one chain form."""
    body = json.dumps([prev, *fields], separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def old_store(path: Path, *, first_use: bool) -> None:
    """A store as the old code left it, holding a row in each of its store tables."""
    with sqlite3.connect(path) as db:
        for ddl in OLD_STORE_DDL + (OLD_FIRST_USE_DDL if first_use else []):
            db.execute(ddl)
        db.execute("INSERT INTO state VALUES ('schema_version', '1'), ('last_sequence', '41')")
        db.execute("INSERT INTO received VALUES ('urn:nl:cbs:GM0518', 'ev-1', 'nl.leerplicht.ping', 41, 1.5)")
        db.execute(
            "INSERT INTO outbox (sink, event_source, event_id, event_type, body, status, attempts,"
            " created_at, next_attempt_at, stuck_reported)"
            " VALUES ('hook', 'urn:nl:cbs:GM0518', 'ev-1', 'nl.leerplicht.ping', x'7b7d', 'pending', 0,"
            " 1.5, 1.5, 0)"
        )
    db.close()


def old_audit_rows(n: int) -> list[dict[str, Any]]:
    rows, prev = [], GENESIS
    for i in range(n):
        row: dict[str, Any] = {
            "seq": i + 1,
            "at": 1_700_000_000.123456 + i / 7,
            "activity": ["notice.asked", "notice.checked", "notice.closed"][i % 3],
            "notice_id": f"nt-{i // 3}",
            "asker": "GM0518",
            "counterpart": None if i % 3 == 0 else "GM0599",
            "event_id": f"ev-{i}",
            "outcome": "sent" if i % 3 == 0 else "no_match",
            "pupil_ref": None,
            "prev_hash": prev,
        }
        row["hash"] = prev = old_link(prev, [row[name] for name in AUDITED])
        rows.append(row)
    return rows


def insert_audit(path: Path, rows: list[dict[str, Any]]) -> None:
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO notice_audit VALUES (:seq, :at, :activity, :notice_id, :asker, :counterpart,"
            " :event_id, :outcome, :pupil_ref, :prev_hash, :hash)",
            rows,
        )
    db.close()


def read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(sql).fetchall()
    db.close()
    return rows


def schema_diff(path: Path) -> list[Any]:
    """What autogenerate would change to make the database match the models."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


async def test_a_fresh_store_is_created_at_head_and_matches_the_models(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await LocalStore.open(path)
    try:
        assert await store.revision() == head_revision()
    finally:
        await store.close()
    tables = {name for (name,) in read(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(metadata.tables) | {"alembic_version"}
    assert schema_diff(path) == []
    # Opening it again changes nothing.
    store = await LocalStore.open(path)
    await store.close()
    assert read(path, "SELECT version_num FROM alembic_version") == [(head_revision(),)]


@pytest.mark.parametrize("first_use", [False, True], ids=["store-tables-only", "all-tables"])
async def test_a_store_made_before_the_history_is_adopted_with_its_rows(
    tmp_path: Path, first_use: bool
) -> None:
    path = tmp_path / "store.db"
    old_store(path, first_use=first_use)
    assert BASELINE != head_revision()
    store = await LocalStore.open(path)
    try:
        assert await store.revision() == head_revision()
        assert await store.received_count() == 1
        assert await store.seen("urn:nl:cbs:GM0518", "ev-1")
        assert await store.last_sequence() == 41
        assert await store.outbox_counts() == {"pending": 1}
        [item] = await store.due("hook", now=2.0)
        assert (item.event_id, item.body) == ("ev-1", b"{}")
    finally:
        await store.close()
    # The tables the old code made on first use exist now, whether it had made them or not.
    assert schema_diff(path) == []


async def test_an_intact_old_notice_audit_is_relinked_and_verifies(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old_store(path, first_use=True)
    rows = old_audit_rows(7)
    insert_audit(path, rows)
    store = await LocalStore.open(path)
    try:
        report = await verify_notice_audit(store)
    finally:
        await store.close()
    assert report.intact and report.records == 7
    relinked = read(path, "SELECT seq, activity, notice_id, prev_hash, hash FROM notice_audit ORDER BY seq")
    # Same records, every hash now in the one form (none kept from the old form).
    assert [(r[0], r[1], r[2]) for r in relinked] == [(r["seq"], r["activity"], r["notice_id"]) for r in rows]
    assert not {r[4] for r in relinked} & {r["hash"] for r in rows}
    prev = GENESIS
    for old, (_, _, _, prev_hash, hash_) in zip(rows, relinked, strict=True):
        assert prev_hash == prev
        assert hash_ == link(prev, {name: old[name] for name in AUDITED})
        prev = hash_


async def test_a_tampered_old_notice_audit_is_refused_not_reblessed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old_store(path, first_use=True)
    rows = old_audit_rows(6)
    rows[3]["outcome"] = "match"  # edited after it was chained
    insert_audit(path, rows)
    before = read(path, "SELECT * FROM notice_audit ORDER BY seq")
    tables = read(path, "SELECT name, sql FROM sqlite_master ORDER BY name")
    for _ in range(2):  # and it stays refused: the upgrade is one transaction, all undone
        with pytest.raises(AuditChainBroken, match="seq=4") as refused:
            await LocalStore.open(path)
        assert refused.value.seq == 4
        assert read(path, "SELECT * FROM notice_audit ORDER BY seq") == before
        assert read(path, "SELECT name, sql FROM sqlite_master ORDER BY name") == tables  # no alembic_version


async def test_two_processes_opening_a_new_store_at_once_migrate_it_once(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    stores = await asyncio.gather(*(LocalStore.open(path) for _ in range(3)))
    try:
        assert {await s.revision() for s in stores} == {head_revision()}
    finally:
        for s in stores:
            await s.close()
    assert schema_diff(path) == []


async def test_tables_of_something_else_are_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE received (id INTEGER PRIMARY KEY)")
    db.close()
    with pytest.raises(StoreMigrationError, match="lacks"):
        await LocalStore.open(path)


async def test_processing_log_records_from_before_0008_keep_their_rows_and_name_no_one(
    tmp_path: Path,
) -> None:
    from alembic import command

    from connectors.keystore import Keystore
    from connectors.store import alembic_config
    from schemas.processing_log import ProcessingRecord

    path = tmp_path / "store.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0007")
            conn.exec_driver_sql(
                "INSERT INTO processing_log (trace_id, span_id, name, status_code, start_time, end_time, "
                "processing_activity_id, event_id, event_type, subject) VALUES ('t', 's', "
                "'receive transfer.offered', 1, 1.0, 1.0, 'urn:x', 'ev-old', "
                "'nl.leerplicht.transfer.offered', 'tr-1')"
            )
    finally:
        engine.dispose()
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase="store test", scrypt_n=2**14)
    store = await LocalStore.open(path, keystore)
    try:
        assert await store.revision() == head_revision() and head_revision() >= "0008"
        [old] = await store.processing_records()
        assert (old.event_id, old.about, old.data_subject_id, old.legal_basis) == (
            "ev-old",
            "tr-1",
            None,
            None,
        )
        # A later step of that transfer has no subject to inherit; a new offer names its own.
        step = ProcessingRecord(
            "t2",
            "s2",
            None,
            "send transfer.accepted",
            1,
            2.0,
            2.0,
            "urn:x",
            "ev-2",
            "nl.leerplicht.transfer.accepted",
            about="tr-1",
        )
        await store.log_processing(step)
        offer = ProcessingRecord(
            "t3",
            "s3",
            None,
            "receive transfer.offered",
            1,
            3.0,
            3.0,
            "urn:x",
            "ev-3",
            "nl.leerplicht.transfer.offered",
            data_subject_id="111222333",
            about="tr-2",
            legal_basis=("lpw-1969-art-18", "Leerplichtwet 1969, artikel 18"),
        )
        await store.log_processing(offer)
        found = await store.subject_records("111222333")
        assert [(r.event_id, r.legal_basis) for r, _ in found] == [
            ("ev-3", ("lpw-1969-art-18", "Leerplichtwet 1969, artikel 18"))
        ]
    finally:
        await store.close()
    assert schema_diff(path) == []


async def test_concurrent_writes_of_one_store_all_land(tmp_path: Path) -> None:
    """Many tasks of one connector writing at once (HTTP requests logging what they sent, one
    by one and as a batch, the consumer accepting, the outbox worker marking delivered): every
    write lands."""
    from schemas.envelope import CloudEvent
    from schemas.processing_log import ProcessingRecord

    store = await LocalStore.open(tmp_path / "connector.db")
    try:

        def record(i: int) -> ProcessingRecord:
            return ProcessingRecord(
                f"{i:032x}",
                f"{i:016x}",
                None,
                "send ping",
                1,
                0.0,
                1.0,
                "urn:x",
                f"ev-{i}",
                "nl.leerplicht.ping",
            )

        def ping(i: int) -> CloudEvent:
            return CloudEvent(
                source="urn:nld:cbs:GM0518:systeem:t",
                type="nl.leerplicht.ping",
                recipients=["GM0599"],
                data={"text": "x"},
                id=f"in-{i}",
            )

        await asyncio.gather(
            *(store.log_processing(record(i)) for i in range(60)),
            store.log_processing_many([record(i) for i in range(60, 120)]),
            *(store.accept(ping(i), [("case-system", b"{}")]) for i in range(60)),
        )
        items = await store.due("case-system", limit=100)
        await asyncio.gather(*(store.mark_delivered(item.id) for item in items))
        assert len(await store.processing_records()) == 120
        assert await store.received_count() == 60
        assert (await store.outbox_counts("case-system")).get("delivered") == 60
    finally:
        await store.close()
