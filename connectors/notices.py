"""Neighbour notices, the connector's side (DESIGN section 2): ask a group "do you know this
pupil?" without telling anyone who does not.

    desk = NoticeDesk(connector, sealer, store, keyring, contact_person={"name": ..., ...})
    notice_id = await desk.send_missing("zuid-holland", bsn, contact, deadline)
    ...for every inbox event of a notice or group-key type:
    outcome = await desk.handle(message.event, message.payload)
    ...
    await desk.close(notice_id)                   # everyone stops looking
    await desk.expire()                           # periodically: deadlines passed

Asking: the BSN's blind index under the group's current key (`connectors.group_keys`,
rotated first if the membership changed) goes out in a *signed* `notice.pupil_missing` to
`group:<name>`, with the key id, a fresh notice id (also the envelope's `subject`), the
asker's contact point and the deadline — nothing that describes the pupil.

Answering: a member computes the index of every BSN in its local register under that key
(decrypting only the BSN column; cached per key id until the register changes), and on a
match answers `notice.pupil_found` to the asker alone, *sealed*: registration date, school,
contact person. A notice under a key it does not hold (it is not, or no longer, a member)
cannot be matched. The received index is kept encrypted at rest while the notice is open, so
`rescan()` can answer after a register import; closing or expiry deletes it.

Audit: every step — asked, checked (match / no match / no key), answered, found, closed,
expired, refused by the hub — is appended to the local, hash-chained `notice_audit` table, linked in the one
form of `schemas.audit_chain` (the hub's too) and checked by `verify_notice_audit` (the hub
logs its routing decisions for both parties). Records name the notice, the other tenant, the event
and the register row id (`pupil_ref`), never a BSN or an index.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from connectors.at_rest import decrypt_at_rest, encrypt_at_rest, unwrap_data_key, wrap_data_key
from connectors.client import Connector
from connectors.group_keys import KEY_SHARED, GroupKey, GroupKeyring, send
from connectors.schema import local_notices, notice_audit, pupils
from connectors.sealing import Sealer
from connectors.store import LocalStore
from schemas.audit_chain import GENESIS, ChainReport, Link, link
from schemas.audit_chain import verify as verify_chain
from schemas.blind_index import blind_index, normalise_bsn
from schemas.envelope import CloudEvent
from schemas.errors import Conflict, CryptoError, InbeeldError, NotFound
from schemas.events import (
    ContactPerson,
    ContactPoint,
    GroupKeyShared,
    NoticeClosed,
    Payload,
    PupilFound,
    PupilMissing,
    School,
)
from schemas.processing_log import processing_activity_id

__all__ = [
    "CLOSED",
    "EXPIRED",
    "MISSING",
    "NOTICE_TYPES",
    "OPEN",
    "REFUSED",
    "AuditEntry",
    "LocalNotice",
    "NoticeDesk",
    "NoticeOutcome",
    "deadline_in",
    "verify_notice_audit",
]

log = structlog.get_logger("inbeeld.connector.notices")
ACTIVITY = processing_activity_id("nl.leerplicht.notice")

MISSING = "nl.leerplicht.notice.pupil_missing"
FOUND = "nl.leerplicht.notice.pupil_found"
CLOSED_TYPE = "nl.leerplicht.notice.closed"
NOTICE_TYPES = (MISSING, FOUND, CLOSED_TYPE, KEY_SHARED)
OPEN, CLOSED, EXPIRED = "open", "closed", "expired"
REFUSED = "refused"  # the hub refused our pupil_missing (`hub.rejected`): nobody was asked


@dataclass(frozen=True)
class LocalNotice:
    notice_id: str
    asker: str
    role: str
    addressed: list[str]
    key_id: str
    state: str
    deadline: float
    created_at: float
    closed_at: float | None
    answered: bool
    found_by: list[str]
    event_id: str | None = None  # the event that asked (ours) or brought it (received)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float
    activity: str
    notice_id: str
    asker: str
    counterpart: str | None
    event_id: str | None
    outcome: str
    pupil_ref: str | None
    hash: str


@dataclass(frozen=True)
class NoticeOutcome:
    """What `handle` did: `kind` names it; `answer` is the pupil_found we sent (a match),
    `found` the finder's answer to our notice (open it for the officer)."""

    kind: str
    notice_id: str | None = None
    answer: CloudEvent | None = None
    found: PupilFound | None = None
    sender: str | None = None


def _contact_key(notice_id: str, finder: str) -> str:
    """The `state` key of the contact person `finder` named in its answer to `notice_id`."""
    return "notice_contact:" + hashlib.sha256(f"{notice_id}\n{finder}".encode()).hexdigest()[:48]


def _ts(value: datetime) -> float:
    if value.tzinfo is None:
        raise ValueError("give an aware datetime")
    return value.timestamp()


def _local(row: Any) -> LocalNotice:
    return LocalNotice(
        row.notice_id,
        row.asker,
        row.role,
        json.loads(row.addressed),
        row.key_id,
        row.state,
        row.deadline,
        row.created_at,
        row.closed_at,
        bool(row.answered),
        json.loads(row.found_by),
        row.event_id,
    )


class NoticeDesk:
    """One tenant's neighbour notices: asking, answering, closing, and the local audit."""

    def __init__(
        self,
        connector: Connector,
        sealer: Sealer,
        store: LocalStore,
        keyring: GroupKeyring,
        *,
        contact_person: ContactPerson | Mapping[str, Any] | None = None,
        auto_answer: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if store.keystore is None:
            raise InbeeldError("notices need the keystore (what they keep is encrypted at rest)")
        self.connector = connector
        self.sealer = sealer
        self.store = store
        self.keyring = keyring
        self.tenant = keyring.tenant
        self.contact_person = (
            ContactPerson.model_validate(dict(contact_person))
            if isinstance(contact_person, Mapping)
            else contact_person
        )
        # False: a match is audited and reported (`NoticeOutcome("matched")`), not answered.
        self.auto_answer = auto_answer
        self.clock = clock
        # key id -> (register fingerprint, {index hex: register row id}); memory only, so
        # shredding the register and its secret leaves no index behind.
        self._indexes: dict[str, tuple[tuple[int, float], dict[str, str]]] = {}

    # -- asking -------------------------------------------------------------------------------

    async def send_missing(
        self,
        group: str,
        bsn: str,
        contact: ContactPoint | Mapping[str, Any],
        deadline: datetime,
    ) -> str:
        """Ask `group` about the pupil with `bsn`; returns the notice id."""
        key = await self.keyring.ensure(group, self.connector, self.sealer)
        index = blind_index(bsn, key.key, key.key_id)
        notice_id = f"nt-{uuid.uuid4().hex}"
        payload = PupilMissing(
            notice_id=notice_id,
            blind_index=index.value_hex,
            group_key_id=key.key_id,
            contact=ContactPoint.model_validate(contact) if isinstance(contact, Mapping) else contact,
            deadline=deadline,
        )
        addressed = [f"group:{group}"]
        event = self.connector.event(MISSING, payload.model_dump(mode="json"), addressed, subject=notice_id)
        async with self.store.engine.begin() as conn:
            await conn.execute(
                local_notices.insert().values(
                    asker=self.tenant,
                    notice_id=notice_id,
                    role="asked",
                    addressed=json.dumps(addressed),
                    key_id=key.key_id,
                    state=OPEN,
                    deadline=_ts(deadline),
                    created_at=self.clock(),
                    answered=0,
                    found_by="[]",
                    event_id=event.id,
                )
            )
        await send(self.connector, self.sealer, event)
        # The event carried an index, not the BSN: its processing-log record learns whom it was
        # about here, and the notice's later records inherit it.
        await self.store.attach_subject(ACTIVITY, notice_id, normalise_bsn(bsn))
        await self._audit("notice.asked", notice_id, self.tenant, None, event.id, "sent")
        return notice_id

    async def close(self, notice_id: str, reason: str = "found") -> CloudEvent:
        """Tell everyone asked to stop looking (`reason`: found | withdrawn | expired)."""
        notice = await self._get(self.tenant, notice_id)
        if notice is None or notice.role != "asked":
            raise NotFound(f"no notice {notice_id} of ours")
        payload = NoticeClosed.model_validate({"notice_id": notice_id, "reason": reason})
        event = self.connector.event(
            CLOSED_TYPE, payload.model_dump(mode="json"), notice.addressed, subject=notice_id
        )
        sent = await send(self.connector, self.sealer, event)
        await self._finish(self.tenant, notice_id, CLOSED)
        await self._audit("notice.closed", notice_id, self.tenant, None, event.id, reason)
        return sent

    async def refused(self, event_id: str, reason: str) -> str | None:
        """The hub refused the event `event_id` we sent (its `hub.rejected`): an open notice it
        asked is `refused` (nobody was asked, nobody looks), audited with the reason. Returns
        the notice id, or None if `event_id` asked no open notice of ours (idempotent: the
        runtime and the command that sent it may both learn of the refusal)."""
        async with self.store.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(local_notices.c.notice_id).where(
                        local_notices.c.asker == self.tenant,
                        local_notices.c.role == "asked",
                        local_notices.c.event_id == event_id,
                        local_notices.c.state == OPEN,
                    )
                )
            ).first()
            if row is None:
                return None
            done = await conn.execute(
                update(local_notices)
                .where(
                    local_notices.c.asker == self.tenant,
                    local_notices.c.notice_id == row.notice_id,
                    local_notices.c.state == OPEN,
                )
                .values(state=REFUSED, closed_at=self.clock())
            )
        if not done.rowcount:
            return None
        await self._audit("notice.refused", row.notice_id, self.tenant, None, event_id, reason[:32])
        return str(row.notice_id)

    # -- receiving ----------------------------------------------------------------------------

    async def handle(self, event: CloudEvent, payload: Payload | None = None) -> NoticeOutcome:
        """Process one inbox event of a `NOTICE_TYPES` type (opened here if `payload` is None)."""
        if payload is None:
            payload = await self.sealer.open(event)
        sender = await self.sealer.sender_of(event)
        if isinstance(payload, GroupKeyShared):
            key = await self.keyring.receive(sender, event, payload)
            return NoticeOutcome("key_stored" if key else "key_refused", sender=sender)
        if isinstance(payload, PupilMissing):
            return await self._on_missing(sender, event, payload)
        if isinstance(payload, PupilFound):
            return await self._on_found(sender, event, payload)
        if isinstance(payload, NoticeClosed):
            notice = await self._get(sender, payload.notice_id)
            if notice is not None and notice.state == OPEN:
                await self._finish(sender, payload.notice_id, CLOSED)
                await self._audit(
                    "notice.closed", payload.notice_id, sender, sender, event.id, payload.reason
                )
            return NoticeOutcome("closed", payload.notice_id, sender=sender)
        return NoticeOutcome("ignored", sender=sender)

    async def _on_missing(self, asker: str, event: CloudEvent, payload: PupilMissing) -> NoticeOutcome:
        nid = payload.notice_id
        if await self._get(asker, nid) is not None:
            return NoticeOutcome("duplicate", nid, sender=asker)
        state = OPEN if _ts(payload.deadline) > self.clock() else EXPIRED
        blob, wrapped = (
            self._seal_at_rest(nid, asker, payload.blind_index.encode()) if state == OPEN else (None, None)
        )
        async with self.store.engine.begin() as conn:
            await conn.execute(
                sqlite_insert(local_notices)
                .values(
                    asker=asker,
                    notice_id=nid,
                    role="received",
                    addressed=json.dumps(list(event.recipients)),
                    key_id=payload.group_key_id,
                    secret_blob=blob,
                    wrapped_key=wrapped,
                    state=state,
                    deadline=_ts(payload.deadline),
                    created_at=self.clock(),
                    answered=0,
                    found_by="[]",
                    event_id=event.id,
                )
                .on_conflict_do_nothing()
            )
        if state != OPEN:
            await self._audit("notice.checked", nid, asker, asker, event.id, "expired")
            return NoticeOutcome("expired", nid, sender=asker)
        return await self._match_and_answer(asker, nid, payload.group_key_id, payload.blind_index, event.id)

    async def _match_and_answer(
        self, asker: str, notice_id: str, key_id: str, index: str, event_id: str
    ) -> NoticeOutcome:
        key = await self.keyring.by_id(key_id)
        if key is None:
            await self._audit("notice.checked", notice_id, asker, asker, event_id, "no_key")
            return NoticeOutcome("no_key", notice_id, sender=asker)
        pupil_ref = (await self._index(key)).get(index)
        if pupil_ref is None:
            await self._audit("notice.checked", notice_id, asker, asker, event_id, "no_match")
            return NoticeOutcome("no_match", notice_id, sender=asker)
        await self._audit("notice.checked", notice_id, asker, asker, event_id, "match", pupil_ref)
        bsn = await self._bsn_of(pupil_ref)
        if bsn is not None:  # the question was about this pupil of ours: its records say so
            await self.store.attach_subject(ACTIVITY, notice_id, bsn)
        if not self.auto_answer:
            return NoticeOutcome("matched", notice_id, sender=asker)
        if not await self._claim_answer(asker, notice_id, claim=True):
            # Answered already, or being answered right now (a rescan racing the inbox).
            return NoticeOutcome("duplicate", notice_id, sender=asker)
        try:
            answer = await self._answer(asker, notice_id, pupil_ref)
        except BaseException:
            await self._claim_answer(asker, notice_id, claim=False)
            raise
        return NoticeOutcome("answered", notice_id, answer=answer, sender=asker)

    async def _claim_answer(self, asker: str, notice_id: str, *, claim: bool) -> bool:
        """Mark a received notice answered (`claim`) or not; True if this call changed it.

        Claiming before sending makes the answer single when the inbox and a rescan match the
        same notice at once; a failed send gives the claim back so a later rescan answers."""
        async with self.store.engine.begin() as conn:
            result = await conn.execute(
                update(local_notices)
                .where(
                    local_notices.c.asker == asker,
                    local_notices.c.notice_id == notice_id,
                    local_notices.c.answered == (0 if claim else 1),
                )
                .values(answered=1 if claim else 0)
            )
        return result.rowcount == 1

    async def _bsn_of(self, pupil_ref: str) -> str | None:
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(pupils).where(pupils.c.id == pupil_ref))).mappings().first()
        bsn = self.store.decrypt_pupil(row).get("bsn") if row is not None else None
        return bsn if isinstance(bsn, str) else None

    async def _answer(self, asker: str, notice_id: str, pupil_ref: str) -> CloudEvent:
        if self.contact_person is None:
            raise InbeeldError("set a contact person to answer notices")
        async with self.store.engine.connect() as conn:
            row = (await conn.execute(select(pupils).where(pupils.c.id == pupil_ref))).mappings().first()
        record = self.store.decrypt_pupil(row) if row is not None else {}
        school = record.get("school")
        found = PupilFound(
            notice_id=notice_id,
            registered_since=None,
            school=School.model_validate(school) if school else None,
            contact=self.contact_person,
        )
        event = self.connector.event(FOUND, found.model_dump(mode="json"), [asker], subject=notice_id)
        sent = await send(self.connector, self.sealer, event)
        await self._audit("notice.answered", notice_id, asker, asker, event.id, "sent", pupil_ref)
        return sent

    async def _on_found(self, finder: str, event: CloudEvent, payload: PupilFound) -> NoticeOutcome:
        nid = payload.notice_id
        if event.subject != nid:
            return NoticeOutcome("ignored", nid, sender=finder)
        notice = await self._get(self.tenant, nid)
        if notice is None or notice.role != "asked":
            await self._audit("notice.found", nid, self.tenant, finder, event.id, "unknown_notice")
            return NoticeOutcome("unknown_notice", nid, sender=finder)
        found_by = sorted({*notice.found_by, finder})
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(local_notices)
                .where(local_notices.c.asker == self.tenant, local_notices.c.notice_id == nid)
                .values(found_by=json.dumps(found_by))
            )
        # Whom to call at the finder (an official's work contact, never the pupil): kept for the
        # workspace's notices page. The school in the answer is the pupil's: not kept.
        await self.store.set_state(_contact_key(nid, finder), payload.contact.model_dump_json())
        await self._audit("notice.found", nid, self.tenant, finder, event.id, "match")
        return NoticeOutcome("found", nid, found=payload, sender=finder)

    # -- time and re-checks -------------------------------------------------------------------

    async def expire(self, now: float | None = None) -> list[str]:
        """Expire open notices whose deadline has passed; returns their ids."""
        t = self.clock() if now is None else now
        async with self.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(local_notices.c.asker, local_notices.c.notice_id).where(
                        local_notices.c.state == OPEN, local_notices.c.deadline <= t
                    )
                )
            ).all()
        for asker, nid in rows:
            await self._finish(asker, nid, EXPIRED, at=t)
            await self._audit("notice.expired", nid, asker, None, None, "expired")
        return [nid for _, nid in rows]

    async def rescan(self) -> list[NoticeOutcome]:
        """Match open, unanswered notices again (after a register import)."""
        await self.expire()
        async with self.store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(local_notices).where(
                        local_notices.c.role == "received",
                        local_notices.c.state == OPEN,
                        local_notices.c.answered == 0,
                    )
                )
            ).all()
        out = []
        for row in rows:
            index = self._open_at_rest(row).decode()
            out.append(
                await self._match_and_answer(row.asker, row.notice_id, row.key_id, index, row.event_id)
            )
        return out

    # -- queries ------------------------------------------------------------------------------

    async def notices(self, role: str | None = None, state: str | None = None) -> list[LocalNotice]:
        q = select(local_notices).order_by(local_notices.c.created_at.desc())
        if role is not None:
            q = q.where(local_notices.c.role == role)
        if state is not None:
            q = q.where(local_notices.c.state == state)
        async with self.store.engine.connect() as conn:
            return [_local(r) for r in (await conn.execute(q)).all()]

    async def awaiting(self) -> list[tuple[LocalNotice, str]]:
        """Received notices, open and not answered, that matched a pupil of the register (with
        `auto_answer` off, a person confirms before "found" is sent): each with the register
        row id of its latest match."""
        out = []
        for notice in await self.notices(role="received", state=OPEN):
            if notice.answered:
                continue
            matches = [
                a.pupil_ref
                for a in await self.audit(notice.notice_id)
                if a.activity == "notice.checked" and a.outcome == "match" and a.asker == notice.asker
            ]
            if matches and matches[-1] is not None:
                out.append((notice, matches[-1]))
        return out

    async def confirm(self, asker: str, notice_id: str) -> CloudEvent:
        """Answer "found" to `asker`'s notice after a person confirmed the match: matched again
        against the register as it is now. `NotFound` if it is not open or no longer matches,
        `Conflict` if it was answered already."""
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(local_notices).where(
                        local_notices.c.asker == asker,
                        local_notices.c.notice_id == notice_id,
                        local_notices.c.role == "received",
                    )
                )
            ).first()
        if row is None or row.state != OPEN or row.secret_blob is None:
            raise NotFound(f"no open notice {notice_id} of {asker}")
        if row.answered:
            raise Conflict(f"notice {notice_id} of {asker} is answered already")
        key = await self.keyring.by_id(row.key_id)
        pupil_ref = (await self._index(key)).get(self._open_at_rest(row).decode()) if key else None
        if pupil_ref is None:
            raise NotFound(f"notice {notice_id} of {asker} no longer matches a pupil of the register")
        if not await self._claim_answer(asker, notice_id, claim=True):
            raise Conflict(f"notice {notice_id} of {asker} is answered already")
        try:
            return await self._answer(asker, notice_id, pupil_ref)
        except BaseException:
            await self._claim_answer(asker, notice_id, claim=False)
            raise

    async def found_contacts(self, notice: LocalNotice) -> dict[str, ContactPerson]:
        """The contact person each finder of our `notice` named in its answer, by tenant."""
        out = {}
        for finder in notice.found_by:
            kept = await self.store.get_state(_contact_key(notice.notice_id, finder))
            if kept is not None:
                out[finder] = ContactPerson.model_validate_json(kept)
        return out

    async def get(self, notice_id: str, asker: str | None = None) -> LocalNotice | None:
        return await self._get(asker or self.tenant, notice_id)

    async def audit(self, notice_id: str | None = None) -> list[AuditEntry]:
        q = select(notice_audit).order_by(notice_audit.c.seq)
        if notice_id is not None:
            q = q.where(notice_audit.c.notice_id == notice_id)
        async with self.store.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [
            AuditEntry(
                r.seq,
                r.at,
                r.activity,
                r.notice_id,
                r.asker,
                r.counterpart,
                r.event_id,
                r.outcome,
                r.pupil_ref,
                r.hash,
            )
            for r in rows
        ]

    async def verify_audit(self) -> bool:
        """Recompute the local audit chain; False if a record was altered or removed."""
        return (await verify_notice_audit(self.store)).intact

    # -- internals ----------------------------------------------------------------------------

    async def _get(self, asker: str, notice_id: str) -> LocalNotice | None:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(local_notices).where(
                        local_notices.c.asker == asker, local_notices.c.notice_id == notice_id
                    )
                )
            ).first()
        return _local(row) if row is not None else None

    async def _finish(self, asker: str, notice_id: str, state: str, *, at: float | None = None) -> None:
        async with self.store.engine.begin() as conn:
            await conn.execute(
                update(local_notices)
                .where(
                    local_notices.c.asker == asker,
                    local_notices.c.notice_id == notice_id,
                    local_notices.c.state == OPEN,
                )
                # A received index is useless once the notice is over: forget it.
                .values(
                    state=state,
                    closed_at=self.clock() if at is None else at,
                    secret_blob=None,
                    wrapped_key=None,
                )
            )

    def _seal_at_rest(self, notice_id: str, asker: str, secret: bytes) -> tuple[bytes, str]:
        assert self.store.keystore is not None
        data_key, wrapped = wrap_data_key(self.store.keystore)
        return encrypt_at_rest(data_key, secret, f"notices:{asker}:{notice_id}".encode()), wrapped

    def _open_at_rest(self, row: Any) -> bytes:
        assert self.store.keystore is not None
        data_key = unwrap_data_key(self.store.keystore, row.wrapped_key)
        return decrypt_at_rest(data_key, row.secret_blob, f"notices:{row.asker}:{row.notice_id}".encode())

    async def _index(self, key: GroupKey) -> dict[str, str]:
        """{blind index: register row id} of the whole register under `key`, cached."""
        async with self.store.engine.connect() as conn:
            n, newest = (
                await conn.execute(select(func.count(), func.max(pupils.c.updated_at)).select_from(pupils))
            ).one()
            fingerprint = (int(n or 0), float(newest or 0.0))
            cached = self._indexes.get(key.key_id)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
            rows = (await conn.execute(select(pupils.c.id, pupils.c.wrapped_key, pupils.c.bsn))).all()
        assert self.store.keystore is not None
        table: dict[str, str] = {}
        for pupil_id, wrapped, blob in rows:
            try:
                data_key = unwrap_data_key(self.store.keystore, wrapped)
                bsn = json.loads(decrypt_at_rest(data_key, blob, f"pupils:{pupil_id}:bsn".encode()))
            except CryptoError:
                continue  # shredded
            table[blind_index(bsn, key.key, key.key_id).value_hex] = pupil_id
        self._indexes[key.key_id] = (fingerprint, table)
        return table

    async def _audit(
        self,
        activity: str,
        notice_id: str,
        asker: str,
        counterpart: str | None,
        event_id: str | None,
        outcome: str,
        pupil_ref: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "at": self.clock(),
            "activity": activity,
            "notice_id": notice_id,
            "asker": asker,
            "counterpart": counterpart,
            "event_id": event_id,
            "outcome": outcome,
            "pupil_ref": pupil_ref,
        }
        # `prev_hash` is unique: of two steps audited at once (the inbox and a rescan), one
        # chains first and the other, refused, chains again on top of it, never a fork.
        for _ in range(20):
            try:
                async with self.store.engine.begin() as conn:
                    last = await conn.scalar(
                        select(notice_audit.c.hash).order_by(notice_audit.c.seq.desc()).limit(1)
                    )
                    prev = last or GENESIS
                    await conn.execute(
                        notice_audit.insert().values(**fields, prev_hash=prev, hash=link(prev, fields))
                    )
                break
            except IntegrityError:
                continue
        else:
            raise RuntimeError("could not append to the notice audit chain")
        log.info(
            "notice.audit", activity=activity, notice_id=notice_id, counterpart=counterpart, outcome=outcome
        )


# What a notice audit record's hash covers (`schemas.audit_chain.link`).
_AUDITED = ("at", "activity", "notice_id", "asker", "counterpart", "event_id", "outcome", "pupil_ref")


async def verify_notice_audit(store: LocalStore) -> ChainReport:
    """Recompute the store's notice audit chain; report the first record that does not fit."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(notice_audit).order_by(notice_audit.c.seq))).mappings().all()
    return verify_chain(
        Link(r["seq"], r["prev_hash"], r["hash"], {name: r[name] for name in _AUDITED}) for r in rows
    )


def deadline_in(days: float, now: datetime | None = None) -> datetime:
    """A deadline `days` from now (UTC), for callers that think in days."""
    return (now or datetime.now(UTC)) + timedelta(days=days)
