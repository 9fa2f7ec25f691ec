"""What people did in the workspace, in the connector's processing log (verwerkingenlog, the
table `processing_log` with the Logboek dataverwerkingen fields that `run` fills for every event
sent and received): who did what with which transfer's dossier, and when. A record names the
person (`user_name`), the activity (the record's `name`) and what it was about (`subject`: a
transfer id, a notice id or a register row id); never the pupil's data in the clear: the
pupil it is about (its data subject) is kept encrypted with a keyed index by the store.

A letter rendered about a pupil (`letter_rendered`) is a record of its own too, by the connector
rather than a person: which template, version and languages, and to which kind of addressee
(`ADDRESSEES`), under the letter processing activity; the pupil's access report lists it.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from connectors.schema import processing_log
from connectors.store import LocalStore
from schemas.processing_log import (
    ADDRESSEES,
    LETTER_RENDERED,
    STATUS_ERROR,
    STATUS_OK,
    ProcessingRecord,
    processing_activity_id,
)

# The workspace handles transfers: its records belong to the transfer processing activity.
ACTIVITY = processing_activity_id("nl.leerplicht.transfer")
LETTER_ACTIVITY = processing_activity_id(LETTER_RENDERED)

__all__ = ["LETTER_ACTIVITY", "Entry", "entries", "letter_rendered", "record"]


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float
    user_name: str
    activity: str
    subject: str
    outcome: str


async def record(
    store: LocalStore,
    user_name: str,
    activity: str,
    subject: str,
    outcome: str = "ok",
    *,
    activity_id: str = ACTIVITY,
    data_subject: str | None = None,
) -> None:
    """One thing a person did: a record of its own trace (no event travels with it), under
    the processing activity `activity_id` (the transfer flow's, unless told otherwise). About
    a transfer or notice, it takes that one's data subject; `data_subject` (a BSN) names it
    when the caller knows it (kept encrypted, like every data subject in the log)."""
    now = time.time()
    await store.log_processing(
        ProcessingRecord(
            trace_id=secrets.token_hex(16),
            span_id=secrets.token_hex(8),
            parent_span_id=None,
            name=activity,
            status=STATUS_OK if outcome == "ok" else STATUS_ERROR,
            start=now,
            end=now,
            processing_activity_id=activity_id,
            event_id="",
            event_type="",
            data_subject_id=data_subject,
            about=subject,
        ),
        user_name=user_name,
    )


async def letter_rendered(
    store: LocalStore,
    bsn: str,
    *,
    template_id: str,
    version: str,
    languages: tuple[str, ...],
    addressee: str | None,
    addressed: bool,
) -> str:
    """One letter rendered about the pupil with `bsn` (kept encrypted, found by its keyed
    index): the template's id and version, the languages it is in, the kind of addressee
    (`ADDRESSEES`, None: not said) and whether an address was printed, as non-personal
    attributes. Returns the record's span id (its reference, in no way the pupil's)."""
    if addressee is not None and addressee not in ADDRESSEES:
        raise ValueError(f"addressee must be one of {', '.join(ADDRESSEES)}")
    now = time.time()
    span_id = secrets.token_hex(8)
    attributes = {
        "template": template_id,
        "version": version,
        "languages": "+".join(languages),
        "addressed": "yes" if addressed else "no",
    }
    if addressee is not None:
        attributes["addressee"] = addressee
    await store.log_processing(
        ProcessingRecord(
            trace_id=secrets.token_hex(16),
            span_id=span_id,
            parent_span_id=None,
            name="letter.rendered",
            status=STATUS_OK,
            start=now,
            end=now,
            processing_activity_id=LETTER_ACTIVITY,
            event_id="",
            event_type=LETTER_RENDERED,
            data_subject_id=bsn,
            attributes=attributes,
        )
    )
    return span_id


async def entries(store: LocalStore, subject: str | None = None, limit: int = 500) -> list[Entry]:
    """What people did (newest first): the records with a person's name."""
    log = processing_log.c
    query = select(processing_log).where(log.user_name.is_not(None)).order_by(log.id.desc()).limit(limit)
    if subject is not None:
        query = query.where(log.subject == subject)
    async with store.engine.connect() as conn:
        rows = await conn.execute(query)
        return [
            Entry(
                r.id,
                r.start_time,
                r.user_name,
                r.name,
                r.subject,
                "ok" if r.status_code == STATUS_OK else "error",
            )
            for r in rows
        ]
