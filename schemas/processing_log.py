"""The fields of a processing-log record after the Dutch standard Logboek dataverwerkingen, as
the hub's audit chain and the connector's processing log both carry them.

    trace_id, span_id       the W3C ids of the operation (`span_id` is the standard's
                            `operation_id`); the trace id is the event's, so the records of one
                            transfer at the sender, the hub and the receiver join on it
    parent_span_id          the operation that caused this one: at the hub the sender's
                            `connector.publish`, at a receiver the hub's `router.decide`
    name                    the operation (`send transfer.offered`, `route transfer.offered`)
    status                  0 unknown, 1 ok, 2 error (the standard's `status_code`)
    start, end              when it began and ended
    dpl.core.processing_activity_id
                            URI of the processing activity in the register of processing
                            activities: one per flow (`processing_activity_id`)
    dpl.core.data_subject_id
                            whom it was about (the pupil's BSN): only a connector keeps it,
                            encrypted at rest with a keyed index for lookups; the hub never
                            sees it
    about                   the transfer or notice id (the envelope's `subject`): the later
                            steps of a transfer carry no BSN and take the offer's subject
    legal_basis             the article of law the operation rests on (a transfer's offer
                            names it; its later steps inherit it)
    attributes              what else the operation was, never personal data: a rendered
                            letter's template, version, languages and kind of addressee

`DATA_CATEGORIES` names, per event type, the categories of personal data its payload carries:
what an access request (AVG article 15) lists for each step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIVITY_PREFIX",
    "ADDRESSEES",
    "DATA_CATEGORIES",
    "FLOWS",
    "LETTER_RENDERED",
    "STATUS_ERROR",
    "STATUS_OK",
    "STATUS_UNKNOWN",
    "ProcessingRecord",
    "data_subject_id",
    "flow_of",
    "legal_basis_of",
    "processing_activity_id",
    "status_of",
]

STATUS_UNKNOWN, STATUS_OK, STATUS_ERROR = 0, 1, 2
ACTIVITY_PREFIX = "urn:nld:inbeeld:verwerkingsactiviteit:"
_TYPE_PREFIX = "nl.leerplicht."


# The flows a municipality's register of processing activities maps (`access`: answering a
# data subject's access request, AVG article 15; `letter`: a letter rendered about a pupil).
FLOWS = ("transfer", "notice", "register", "template", "group", "access", "letter")

# A letter rendered about a pupil is logged as this (no event travels: it is not an exchange).
LETTER_RENDERED = "nl.leerplicht.letter.rendered"
# Who a letter is addressed to, as the processing log keeps it: a kind, never a name.
ADDRESSEES = ("parents", "pupil", "pupil_and_parents", "school", "other")

# The categories of personal data each event type's payload carries (its schema), by flow step.
DATA_CATEGORIES: dict[str, tuple[str, ...]] = {
    "transfer.offered": (
        "identity",
        "address",
        "guardians",
        "school",
        "compulsory_education",
        "absence",
        "contact_attempts",
    ),
    "transfer.accepted": ("transfer_status",),
    "transfer.rejected": ("transfer_status",),
    "transfer.completed": ("transfer_status",),
    "transfer.cancelled": ("transfer_status",),
    "transfer.expired": ("transfer_status",),
    "notice.pupil_missing": ("pseudonym",),
    "notice.pupil_found": ("school", "registration"),
    "notice.closed": ("notice_status",),
    # A letter holds the pupil's name (not his BSN) and what its template asks (a case
    # number, a school); one printed with an address window holds the address as well.
    "letter.rendered": ("name", "letter_content"),
}


def flow_of(event_type: str) -> str:
    """The flow of an event type: `transfer` for `nl.leerplicht.transfer.offered`."""
    return event_type.removeprefix(_TYPE_PREFIX).split(".", 1)[0] or "other"


def processing_activity_id(event_type: str) -> str:
    """The processing activity an event type belongs to: its flow (`transfer`, `notice`,
    `template`, ...), as a URN in Inbeeld's register of processing activities."""
    return ACTIVITY_PREFIX + flow_of(event_type)


def status_of(outcome: str) -> int:
    """The standard's status code of an outcome (`routed`, `rejected:<reason>`, ...)."""
    return STATUS_ERROR if outcome.startswith(("rejected", "refused", "failed")) else STATUS_OK


def data_subject_id(data: Any) -> str | None:
    """The BSN of the pupil a payload is about (a transfer's dossier), or None."""
    if not isinstance(data, Mapping):
        return None
    pupil = data.get("pupil")
    bsn = pupil.get("bsn") if isinstance(pupil, Mapping) else None
    return bsn if isinstance(bsn, str) else None


def legal_basis_of(data: Any) -> tuple[str, str] | None:
    """The (code, citation) of the legal basis a payload names (a transfer's dossier), or None."""
    if not isinstance(data, Mapping):
        return None
    basis = data.get("legal_basis")
    if not isinstance(basis, Mapping):
        return None
    code, citation = basis.get("code"), basis.get("citation")
    return (code, citation) if isinstance(code, str) and isinstance(citation, str) else None


@dataclass(frozen=True)
class ProcessingRecord:
    """One operation in a connector's processing log (`data_subject_id` in the clear here; the
    store encrypts it)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    status: int
    start: float
    end: float
    processing_activity_id: str
    event_id: str
    event_type: str
    counterpart: str | None = None  # the other party's tenant code, when known
    data_subject_id: str | None = None
    about: str | None = None  # the transfer or notice id
    legal_basis: tuple[str, str] | None = None  # (code, citation)
    attributes: Mapping[str, str] | None = None  # non-personal: a letter's template, version, ...
