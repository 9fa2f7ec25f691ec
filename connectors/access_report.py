"""A pupil's access report (AVG article 15): everything this municipality exchanged about him,
read from the connector's own processing log.

Each step of a transfer (offered, accepted, rejected, completed, cancelled, expired) and of a
neighbour notice (asked, answered, closed) that was sent or received is one `Step`: when, in
which direction, with whom (the other tenant, or the group asked), the categories of personal
data its message carries (`schemas.processing_log.DATA_CATEGORIES`), the legal basis (the one
the transfer's offer named, else the one the register of processing activities gives) and the
processing activity (its id and name from that register, `[processing_activities]`).

A letter rendered about the pupil (`connectors.processing_log.letter_rendered`) is a `Step` of
the `letter` flow: no other party, its template, version, languages and kind of addressee in
`details` (the record's non-personal attributes), the legal basis the register gives.

The records are found by the data subject's keyed index (`LocalStore.subject_records`):
nothing else in the log is decrypted. Records written before the log kept data subjects are
about no one and are not in any report.

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.store import LocalStore
from schemas.processing_log import DATA_CATEGORIES, STATUS_ERROR, flow_of

__all__ = ["Activity", "Step", "steps_about"]

_TYPE_PREFIX = "nl.leerplicht."


@dataclass(frozen=True)
class Activity:
    """An entry of the municipality's register of processing activities."""

    id: str
    name: str
    legal_basis: str | None = None


@dataclass(frozen=True)
class Step:
    at: float
    flow: str  # transfer | notice | ...
    step: str  # the event's short type: transfer.offered, notice.pupil_found, ...
    sent: bool  # True: this municipality sent it; False: received
    about: str | None  # the transfer or notice id
    counterpart: str | None  # the other tenant (or `group:<name>`); None: the hub
    categories: tuple[str, ...]
    legal_basis: str | None  # the citation
    legal_basis_code: str | None
    activity_id: str
    activity_name: str | None  # None: not in the register (Inbeeld's URN only)
    failed: bool
    # What else the record says, never personal data: a letter's template, version,
    # languages, kind of addressee and whether an address was printed.
    details: Mapping[str, str] = field(default_factory=dict)


async def steps_about(
    store: LocalStore, bsn: str, activities: Mapping[str, Activity] | None = None
) -> list[Step]:
    """The exchanges about the pupil with `bsn`, oldest first. `activities`: flow -> the
    municipality's register entry (`[processing_activities]`)."""
    by_id = {a.id: a for a in (activities or {}).values()}
    by_flow = dict(activities or {})
    out: list[Step] = []
    for record, user_name in await store.subject_records(bsn):
        if not record.event_type or user_name is not None:
            continue  # what a person did in the workspace, not an exchange
        short = record.event_type.removeprefix(_TYPE_PREFIX)
        flow = flow_of(record.event_type)
        details = dict(record.attributes or {})
        categories = DATA_CATEGORIES.get(short, ())
        if flow == "letter" and details.get("addressed") == "yes":
            categories = (*categories, "address")
        activity = by_id.get(record.processing_activity_id)  # None: Inbeeld's URN, no entry
        basis_code, basis = record.legal_basis if record.legal_basis else (None, None)
        if basis is None:
            fallback = activity or by_flow.get(flow)
            basis = fallback.legal_basis if fallback is not None else None
        out.append(
            Step(
                at=record.start,
                flow=flow,
                step=short,
                sent=record.name.startswith("send "),
                about=record.about,
                counterpart=record.counterpart,
                categories=categories,
                legal_basis=basis,
                legal_basis_code=basis_code,
                activity_id=record.processing_activity_id,
                activity_name=activity.name if activity is not None else None,
                failed=record.status == STATUS_ERROR,
                details=details,
            )
        )
    return out
