"""The connector's local store: one SQLite file with its own schema (`connectors.schema`)
and its own alembic history (`connectors/migrations`, not the hub's).

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

Opening the store upgrades its database to the newest revision in place. A store made before
the history existed (its tables created on first use, no `alembic_version`) is adopted: it
is stamped at the baseline revision, whose tables it has, and upgraded from there.

Personal data (pupil columns, outbox bodies) is encrypted with `connectors.at_rest` under a
per-row data key wrapped by the keystore's at-rest secret, so shredding that secret makes it
unreadable. SQLite runs with `secure_delete` (deleted rows are zeroed) and synchronous=FULL
with WAL: once `accept()` returns, the outbox row survives a crash, and only then is the
broker message acked.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import ColumnElement, Connection, and_, event, exists, func, inspect, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from connectors.at_rest import (
    AtRestSecrets,
    decrypt_at_rest,
    encrypt_at_rest,
    unwrap_data_key,
    wrap_data_key,
)
from connectors.schema import hub_replies, outbox, processing_log, received, state, templates
from schemas.envelope import CloudEvent
from schemas.errors import InbeeldError
from schemas.processing_log import ACTIVITY_PREFIX, ProcessingRecord

__all__ = [
    "BASELINE",
    "DEAD",
    "DELIVERED",
    "DROPPED",
    "PARKED",
    "PENDING",
    "HubReply",
    "LocalStore",
    "OutboxItem",
    "StoreMigrationError",
    "alembic_config",
    "head_revision",
    "held_behind_parked",
]

log = structlog.get_logger("inbeeld.connector.store")

# DEAD: given up after retry_days; PARKED: refused for good by the receiver, waiting for an
# operator (`connectors.outbox`); DROPPED: an operator gave it up.
PENDING, DELIVERED, DEAD, PARKED, DROPPED = "pending", "delivered", "dead", "parked", "dropped"
MIGRATIONS = Path(__file__).with_name("migrations")
# The revision whose tables every store made before the history existed has.
BASELINE = "0001"
_BASELINE_TABLES = frozenset({"received", "state", "outbox", "templates", "hub_replies", "pupils"})


class StoreMigrationError(InbeeldError):
    """The local store's database cannot be brought to this version's schema."""


PUPIL_COLUMNS = (
    "bsn",
    "given_names",
    "family_name_prefix",
    "family_name",
    "birth_date",
    "address",
    "school",
)


@dataclass(frozen=True)
class HubReply:
    event_id: str
    kind: str
    about: str
    reason: str | None
    message: str | None
    field: str | None
    recipient: str | None
    received_at: float


@dataclass(frozen=True)
class OutboxItem:
    id: int
    sink: str
    event_source: str
    event_id: str
    event_type: str
    body: bytes
    attempts: int
    created_at: float
    subject: str | None = None
    refusals: int = 0  # permanent refusals (4xx other than 408/429) since queued or retried
    retried_at: float | None = None

    @property
    def since(self) -> float:
        """When its `retry_days` started: queued, or last retried by an operator."""
        return self.created_at if self.retried_at is None else max(self.created_at, self.retried_at)


BUSY_TIMEOUT = 30.0  # seconds a connection waits for another's write lock


@asynccontextmanager
async def _migrating(path: Path) -> AsyncIterator[None]:
    """An exclusive lock on `<store>.migrate.lock` (flock: across processes, and across
    openers in one process, each with its own open file), waited for in a thread."""
    fd = os.open(path.with_name(path.name + ".migrate.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing lets the lock go


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "secure_delete=ON", "foreign_keys=ON"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


class LocalStore:
    """The connector's SQLite store. `await LocalStore.open(path, keystore)`; implements
    `connectors.client.InboxState` for the SDK."""

    def __init__(self, engine: AsyncEngine, keystore: AtRestSecrets | None) -> None:
        self.engine = engine
        self.keystore = keystore
        # The last sequence is written with the next remember/accept, in its transaction:
        # one commit per message, and never ahead of what was actually processed.
        self._sequence: int | None = None
        self._sequence_dirty = False
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()
        # The municipality's register of processing activities: flow -> its activity id
        # (`[processing_activities]`); a flow not in it keeps Inbeeld's URN.
        self.activities: dict[str, str] = {}

    @classmethod
    async def open(cls, path: str | Path, keystore: AtRestSecrets | None = None) -> LocalStore:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT})
        event.listen(engine.sync_engine, "connect", _on_connect)
        try:
            # One opener migrates at a time, for the whole upgrade: SQLite's write lock is let
            # go between the migrations that rebuild tables, so a second process (or task)
            # opening the same new store would otherwise migrate it from a stale revision.
            async with _migrating(path):
                async with engine.begin() as conn:
                    await conn.run_sync(_upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, keystore)

    async def revision(self) -> str | None:
        """The alembic revision the database is at."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_current)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- InboxState ---------------------------------------------------------------------------

    async def seen(self, source: str, event_id: str) -> bool:
        async with self.engine.connect() as conn:
            row = await conn.scalar(
                select(received.c.event_id).where(
                    and_(received.c.source == source, received.c.event_id == event_id)
                )
            )
        return row is not None

    async def remember(self, event: CloudEvent) -> None:
        if (event.source, event.id) in self._recent:
            return  # accept() already did, in the same transaction as the outbox rows
        async with self.engine.begin() as conn:
            await self._remember(conn, event)

    async def _remember(self, conn: AsyncConnection, event: CloudEvent) -> None:
        stmt = sqlite_insert(received).values(
            source=event.source,
            event_id=event.id,
            type=event.type,
            sequence=event.sequence,
            received_at=time.time(),
        )
        await conn.execute(stmt.on_conflict_do_nothing())
        if self._sequence_dirty and self._sequence is not None:
            await self._set_state(conn, "last_sequence", str(self._sequence))
            self._sequence_dirty = False
        self._recent[(event.source, event.id)] = None
        while len(self._recent) > 1000:
            self._recent.popitem(last=False)

    async def last_sequence(self) -> int | None:
        if self._sequence is None:
            value = await self.get_state("last_sequence")
            self._sequence = int(value) if value is not None else None
        return self._sequence

    async def set_last_sequence(self, sequence: int) -> None:
        self._sequence = sequence
        self._sequence_dirty = True

    async def get_state(self, key: str) -> str | None:
        async with self.engine.connect() as conn:
            value: str | None = await conn.scalar(select(state.c.value).where(state.c.key == key))
        return value

    async def set_state(self, key: str, value: str) -> None:
        async with self.engine.begin() as conn:
            await self._set_state(conn, key, value)

    async def _set_state(self, conn: AsyncConnection, key: str, value: str) -> None:
        stmt = sqlite_insert(state).values(key=key, value=value)
        await conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    async def received_count(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(received)) or 0)

    # -- accept + outbox ----------------------------------------------------------------------

    async def accept(self, event: CloudEvent, deliveries: Sequence[tuple[str, bytes]]) -> None:
        """Record `event` as processed and queue its body for each durable sink, atomically."""
        now = time.time()
        async with self.engine.begin() as conn:
            await self._remember(conn, event)
            for sink, body in deliveries:
                stored, wrapped = self._seal_body(sink, event.source, event.id, body)
                stmt = sqlite_insert(outbox).values(
                    sink=sink,
                    event_source=event.source,
                    event_id=event.id,
                    event_type=event.type,
                    subject=event.subject,
                    body=stored,
                    wrapped_key=wrapped,
                    status=PENDING,
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now,
                    stuck_reported=0,
                )
                await conn.execute(stmt.on_conflict_do_nothing())

    def _seal_body(self, sink: str, source: str, event_id: str, body: bytes) -> tuple[bytes, str | None]:
        if self.keystore is None:
            return body, None
        data_key, wrapped = wrap_data_key(self.keystore)
        return encrypt_at_rest(data_key, body, _outbox_aad(sink, source, event_id)), wrapped

    async def due(self, sink: str, now: float | None = None, limit: int = 50) -> list[OutboxItem]:
        """The pending items of `sink` whose time has come, oldest first; an item held behind a
        parked one of its subject is not due (per-subject order)."""
        now = time.time() if now is None else now
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(outbox)
                    .where(
                        outbox.c.sink == sink,
                        outbox.c.status == PENDING,
                        outbox.c.next_attempt_at <= now,
                        ~held_behind_parked(),
                    )
                    .order_by(outbox.c.id)
                    .limit(limit)
                )
            ).mappings()
            items = []
            for r in rows:
                body = r["body"]
                if r["wrapped_key"] is not None:
                    assert self.keystore is not None, "outbox is encrypted; configure the keystore"
                    key = unwrap_data_key(self.keystore, r["wrapped_key"])
                    body = decrypt_at_rest(key, body, _outbox_aad(sink, r["event_source"], r["event_id"]))
                items.append(
                    OutboxItem(
                        r["id"],
                        sink,
                        r["event_source"],
                        r["event_id"],
                        r["event_type"],
                        body,
                        r["attempts"],
                        r["created_at"],
                        r["subject"],
                        r["refusals"],
                        r["retried_at"],
                    )
                )
        return items

    async def next_due(self, sink: str) -> float | None:
        async with self.engine.connect() as conn:
            value = await conn.scalar(
                select(func.min(outbox.c.next_attempt_at)).where(
                    outbox.c.sink == sink, outbox.c.status == PENDING, ~held_behind_parked()
                )
            )
        return float(value) if value is not None else None

    async def mark_delivered(self, item_id: int) -> None:
        async with self.engine.begin() as conn:
            # The body is no longer needed: drop it, so the store keeps no personal data.
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id)
                .values(
                    status=DELIVERED,
                    delivered_at=time.time(),
                    body=b"",
                    wrapped_key=None,
                    attempts=outbox.c.attempts + 1,
                    last_error=None,
                    last_status=None,
                )
            )

    async def mark_failed(
        self,
        item_id: int,
        error: str,
        next_attempt_at: float,
        *,
        status: int | None = None,
        refused: bool = False,
        dead: bool = False,
        stuck: bool = False,
    ) -> None:
        """One failed attempt: `status` is the receiver's answer (None: none), `refused` a
        permanent refusal (counted towards parking)."""
        values: dict[str, Any] = {
            "attempts": outbox.c.attempts + 1,
            "last_error": error[:500],
            "last_status": status,
            "next_attempt_at": next_attempt_at,
        }
        if refused:
            values["refusals"] = outbox.c.refusals + 1
        if dead:
            values["status"] = DEAD
        if stuck:
            values["stuck_reported"] = 1
        async with self.engine.begin() as conn:
            await conn.execute(update(outbox).where(outbox.c.id == item_id).values(**values))

    async def park(self, item_id: int, status: int, reason: str) -> int:
        """Park an item the receiver refused for good; returns how many later items of its
        subject now wait behind it. The body stays (encrypted) for an operator's retry."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id)
                .values(
                    status=PARKED,
                    attempts=outbox.c.attempts + 1,
                    refusals=outbox.c.refusals + 1,
                    last_status=status,
                    last_error=reason[:500],
                    reason=reason[:200],
                    parked_at=time.time(),
                )
            )
            sink, subject = (
                await conn.execute(select(outbox.c.sink, outbox.c.subject).where(outbox.c.id == item_id))
            ).one()
            if subject is None:
                return 0
            held = await conn.scalar(
                select(func.count())
                .select_from(outbox)
                .where(
                    outbox.c.sink == sink,
                    outbox.c.subject == subject,
                    outbox.c.status == PENDING,
                    outbox.c.id > item_id,
                )
            )
        return int(held or 0)

    async def stuck_reported(self, item_id: int) -> bool:
        async with self.engine.connect() as conn:
            return bool(await conn.scalar(select(outbox.c.stuck_reported).where(outbox.c.id == item_id)))

    async def outbox_counts(self, sink: str | None = None) -> dict[str, int]:
        stmt = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        if sink is not None:
            stmt = stmt.where(outbox.c.sink == sink)
        async with self.engine.connect() as conn:
            return {status: int(n) for status, n in (await conn.execute(stmt)).all()}

    # -- templates ----------------------------------------------------------------------------

    async def save_template(self, template_id: str, version: str, publisher: str, bundle: Any) -> None:
        async with self.engine.begin() as conn:
            stmt = sqlite_insert(templates).values(
                template_id=template_id,
                version=version,
                publisher=publisher,
                bundle=json.dumps(bundle, sort_keys=True),
                received_at=time.time(),
            )
            await conn.execute(stmt.on_conflict_do_nothing())

    # -- the hub's answers about our events ------------------------------------------------------

    async def record_hub_reply(
        self,
        event_id: str,
        kind: str,
        about: str,
        *,
        reason: str | None = None,
        message: str | None = None,
        field: str | None = None,
        recipient: str | None = None,
    ) -> None:
        """Keep a `hub.rejected` / `hub.receipt` / `delivery.failed` (idempotent by its event id)."""
        async with self.engine.begin() as conn:
            stmt = sqlite_insert(hub_replies).values(
                event_id=event_id,
                kind=kind,
                about=about,
                reason=reason,
                message=None if message is None else message[:500],
                field=field,
                recipient=recipient,
                received_at=time.time(),
            )
            await conn.execute(stmt.on_conflict_do_nothing())

    async def hub_replies(self, about: str | None = None, kind: str | None = None) -> list[HubReply]:
        q = select(hub_replies).order_by(hub_replies.c.received_at)
        if about is not None:
            q = q.where(hub_replies.c.about == about)
        if kind is not None:
            q = q.where(hub_replies.c.kind == kind)
        async with self.engine.connect() as conn:
            return [HubReply(**dict(r)) for r in (await conn.execute(q)).mappings()]

    # -- register (personal data; see connectors.register) --------------------------------------

    def activity_id(self, activity: str) -> str:
        """The municipality's id of a processing activity given as Inbeeld's URN (its flow)."""
        flow = activity.removeprefix(ACTIVITY_PREFIX) if activity.startswith(ACTIVITY_PREFIX) else None
        return self.activities.get(flow, activity) if flow is not None else activity

    def subject_index(self, bsn: str) -> str:
        """The keyed index of a data subject in the processing log (cf. `bsn_index`)."""
        if self.keystore is None:
            raise RuntimeError("the processing log's data subjects need a keystore")
        key_id, secret = self.keystore.at_rest_secret()
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"inbeeld processing log subject index v1:" + key_id.encode(),
        ).derive(secret)
        return hmac.new(key, bsn.encode(), hashlib.sha256).hexdigest()

    def _subject_columns(self, span_id: str, bsn: str) -> dict[str, Any]:
        assert self.keystore is not None
        data_key, wrapped = wrap_data_key(self.keystore)
        aad = f"processing_log:{span_id}".encode()
        return {
            "data_subject_id": encrypt_at_rest(data_key, bsn.encode(), aad),
            "wrapped_key": wrapped,
            "subject_index": self.subject_index(bsn),
        }

    async def log_processing(self, record: ProcessingRecord, *, user_name: str | None = None) -> None:
        """Keep one processing-log record; its data subject encrypted under a fresh data key
        with its keyed index, or not kept at all without a keystore (never in the clear).

        A record without a data subject that is `about` a transfer or notice takes the subject
        (and the legal basis) of the first record of that transfer or notice under the same
        processing activity: the answers to an offer carry no BSN, the offer does."""
        async with self.engine.begin() as conn:
            await self._log_one(conn, record, user_name)

    async def log_processing_many(self, records: Sequence[ProcessingRecord]) -> None:
        """Keep several processing-log records (as `log_processing` each) in one transaction."""
        async with self.engine.begin() as conn:
            for record in records:
                await self._log_one(conn, record, None)

    async def _log_one(self, conn: AsyncConnection, record: ProcessingRecord, user_name: str | None) -> None:
        activity = self.activity_id(record.processing_activity_id)
        row: dict[str, Any] = {
            "trace_id": record.trace_id,
            "span_id": record.span_id,
            "parent_span_id": record.parent_span_id,
            "name": record.name,
            "status_code": record.status,
            "start_time": record.start,
            "end_time": record.end,
            "processing_activity_id": activity,
            "event_id": record.event_id,
            "event_type": record.event_type,
            "counterpart": record.counterpart,
            "user_name": user_name,
            "subject": record.about,
            "legal_basis": json.dumps(list(record.legal_basis)) if record.legal_basis else None,
            "attributes": json.dumps(dict(record.attributes), sort_keys=True) if record.attributes else None,
        }
        log_ = processing_log.c
        bsn = record.data_subject_id
        if bsn is None and record.about is not None and self.keystore is not None:
            first = (
                (
                    await conn.execute(
                        select(processing_log)
                        .where(
                            log_.subject == record.about,
                            log_.processing_activity_id == activity,
                            log_.subject_index.is_not(None),
                        )
                        .order_by(log_.id)
                        .limit(1)
                    )
                )
                .mappings()
                .first()
            )
            if first is not None:
                bsn = self._record(first).data_subject_id
                row["legal_basis"] = row["legal_basis"] or first["legal_basis"]
        if bsn is not None and self.keystore is not None:
            row.update(self._subject_columns(record.span_id, bsn))
        await conn.execute(processing_log.insert().values(**row))

    async def attach_subject(self, activity: str, about: str, bsn: str) -> int:
        """Name the data subject of the records `about` a transfer or notice (under the
        processing activity `activity`) that have none yet: a notice's BSN is known to the
        desk, not to the event that carried its blind index. Returns how many records."""
        if self.keystore is None:
            return 0
        activity = self.activity_id(activity)
        log_ = processing_log.c
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(log_.id, log_.span_id).where(
                        log_.subject == about,
                        log_.processing_activity_id == activity,
                        log_.subject_index.is_(None),
                    )
                )
            ).all()
            for r in rows:
                await conn.execute(
                    update(processing_log)
                    .where(log_.id == r.id)
                    .values(**self._subject_columns(r.span_id, bsn))
                )
        return len(rows)

    async def subject_records(self, bsn: str) -> list[tuple[ProcessingRecord, str | None]]:
        """Every processing-log record about the pupil with `bsn`, oldest first, each with the
        name of the person who acted (None: the connector itself), found by the keyed index:
        nothing else is decrypted."""
        if self.keystore is None:
            return []
        query = (
            select(processing_log)
            .where(processing_log.c.subject_index == self.subject_index(bsn))
            .order_by(processing_log.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [(self._record(r), r["user_name"]) for r in rows]

    async def processing_records(self, trace_id: str | None = None) -> list[ProcessingRecord]:
        """The processing log, oldest first (one trace's records with `trace_id`), the data
        subject decrypted (None once shredded or never kept)."""
        query = select(processing_log).order_by(processing_log.c.id)
        if trace_id is not None:
            query = query.where(processing_log.c.trace_id == trace_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [self._record(r) for r in rows]

    def _record(self, r: Any) -> ProcessingRecord:
        subject = None
        if r["data_subject_id"] is not None and self.keystore is not None:
            try:
                key = unwrap_data_key(self.keystore, r["wrapped_key"])
                aad = f"processing_log:{r['span_id']}".encode()
                subject = decrypt_at_rest(key, r["data_subject_id"], aad).decode()
            except InbeeldError:  # shredded: the subject is gone, the record stays
                subject = None
        basis = json.loads(r["legal_basis"]) if r["legal_basis"] else None
        attributes = json.loads(r["attributes"]) if r["attributes"] else None
        return ProcessingRecord(
            trace_id=r["trace_id"],
            span_id=r["span_id"],
            parent_span_id=r["parent_span_id"],
            name=r["name"],
            status=r["status_code"],
            start=r["start_time"],
            end=r["end_time"],
            processing_activity_id=r["processing_activity_id"],
            event_id=r["event_id"],
            event_type=r["event_type"],
            counterpart=r["counterpart"],
            data_subject_id=subject,
            about=r["subject"],
            legal_basis=(str(basis[0]), str(basis[1])) if isinstance(basis, list) and basis else None,
            attributes=(
                {str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, dict) else None
            ),
        )

    def bsn_index(self, bsn: str) -> str:
        if self.keystore is None:
            raise RuntimeError("the pupil register needs a keystore")
        key_id, secret = self.keystore.at_rest_secret()
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=b"inbeeld register bsn index v1:" + key_id.encode(),
        ).derive(secret)
        return hmac.new(key, bsn.encode(), hashlib.sha256).hexdigest()

    def encrypt_pupil(self, pupil_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The row values for one pupil: every personal column encrypted under a fresh data key."""
        if self.keystore is None:
            raise RuntimeError("the pupil register needs a keystore")
        data_key, wrapped = wrap_data_key(self.keystore)
        row: dict[str, Any] = {"id": pupil_id, "wrapped_key": wrapped, "updated_at": time.time()}
        for name in PUPIL_COLUMNS:
            value = fields.get(name)
            row[name] = (
                None
                if value is None
                else encrypt_at_rest(
                    data_key, json.dumps(value).encode(), f"pupils:{pupil_id}:{name}".encode()
                )
            )
        return row

    def decrypt_pupil(self, row: Any) -> dict[str, Any]:
        if self.keystore is None:
            raise RuntimeError("the pupil register needs a keystore")
        key = unwrap_data_key(self.keystore, row["wrapped_key"])
        out: dict[str, Any] = {"id": row["id"]}
        for name in PUPIL_COLUMNS:
            blob = row[name]
            out[name] = (
                None
                if blob is None
                else json.loads(decrypt_at_rest(key, blob, f"pupils:{row['id']}:{name}".encode()))
            )
        return out


def held_behind_parked() -> ColumnElement[bool]:
    """True for an outbox row with an earlier parked row of the same sink and subject (an item
    without a subject is never held)."""
    parked = outbox.alias("parked")
    return exists().where(
        parked.c.sink == outbox.c.sink,
        parked.c.subject == outbox.c.subject,
        parked.c.status == PARKED,
        parked.c.id < outbox.c.id,
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """The alembic configuration of the store's history (on `connection`, if given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store's history has one head"
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    # The sqlite3 driver starts a transaction only before DML, so the DDL of a migration would
    # commit statement by statement: begin one explicitly, for the whole upgrade. IMMEDIATE
    # takes the write lock now, so a second process opening the same new store waits for this
    # one instead of migrating it too.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
    cfg = alembic_config(connection)
    if _current(connection) is None:
        tables = set(inspect(connection).get_table_names()) - {"alembic_version"}
        if tables:
            missing = _BASELINE_TABLES - tables
            if missing:
                raise StoreMigrationError(
                    f"the local store has tables {sorted(tables)} but no migration history, and "
                    f"lacks {sorted(missing)}: it is not a connector store this version can adopt"
                )
            log.info("store.adopt", revision=BASELINE, tables=sorted(tables))
            command.stamp(cfg, BASELINE)
    command.upgrade(cfg, "head")


def _outbox_aad(sink: str, source: str, event_id: str) -> bytes:
    return f"outbox:{sink}:{source}:{event_id}".encode()
