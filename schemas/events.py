"""The catalogue of event types: one `EventSpec` per type, holding its payload model.

Payload models describe the *decrypted* content. Sealed types travel as JOSE (see
`schemas.sealed`); the rest travel as plain JSON (hub events, pings) or signed JSON.

Every model forbids unknown fields and bounds every string and list, so a payload's size is
bounded before it is sealed (see `tests/schemas/test_events.py` for the worst case).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.envelope import TYPE_PREFIX, TenantCode
from schemas.errors import UnknownType
from schemas.fields import (
    BSN,
    RTL_LANGUAGES,
    BirthDate,
    BlindIndex,
    BodyText,
    BrinCode,
    CbsCode,
    Direction,
    Email,
    Identifier,
    IsoDate,
    KeyId,
    Language,
    LongText,
    NamePrefix,
    Note,
    PastDate,
    PastDateTime,
    Phone,
    Postcode,
    SemVer,
    ShortText,
    Slug,
    Timestamp,
)

SCHEMA_BASE = "https://schemas.inbeeld.nl"

Protection = Literal["none", "signed", "sealed"]


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Ping(Payload):
    """Connectivity check between tenants; carries no data beyond a short note."""

    text: Annotated[str, Field(max_length=200)] = "hello"


class HubRejected(Payload):
    event_id: Annotated[str, Field(max_length=64)]
    reason: Annotated[
        str,
        Field(
            max_length=32,
            description="A stable reason code (the error tree in schemas.errors and the hub's own "
            "refusals), e.g. envelope_invalid, unknown_type, schema_invalid, too_large, too_deep "
            "(nested beyond the depth limit), source_mismatch, unknown_recipient, not_authorised, "
            "invalid_transition, bad_signature (no signature, a wrong key, a signature that does "
            "not verify, or another envelope), crypto_invalid (a malformed JOSE object), "
            "recipient_key_missing, recipient_busy, personal_data_in_envelope (a BSN in an "
            "envelope attribute), rate_limited (the sender is over its publish rate).",
        ),
    ]
    message: Annotated[str, Field(max_length=500)]
    field: Annotated[str | None, Field(max_length=100)] = None


class Receipt(Payload):
    """A connector's end-to-end acknowledgement: it has processed `event_id` from
    `event_source`. Sent to the original sender; the hub turns it into `hub.receipt`."""

    event_id: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
    event_source: Annotated[str, Field(max_length=200)]


class HubReceipt(Payload):
    event_id: Annotated[str, Field(max_length=64)]
    recipient: Annotated[str, Field(max_length=32)]
    processed_at: Annotated[str, Field(max_length=40)]


class DeliveryFailed(Payload):
    """A recipient's connector could not open (verify, decrypt or validate) `event_id` from
    `event_source`: sent to that event's sender through the hub, which checks that the
    reporter was a recipient. A reference and a reason code only, never content."""

    event_id: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
    event_source: Annotated[str, Field(max_length=200)]
    event_type: Annotated[str, Field(max_length=100, pattern=r"^nl\.leerplicht\.[a-z0-9_.]+$")]
    reason: Annotated[
        str,
        Field(
            max_length=32,
            pattern=r"^[a-z][a-z0-9_]*$",
            description="The recipient's reason code, e.g. crypto_error or bad_signature.",
        ),
    ]


# --- templates ----------------------------------------------------------------------------

PlaceholderName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=64)]


class TemplateText(Payload):
    """One language of a template: its writing direction, subject and body."""

    direction: Direction
    subject: ShortText
    body: BodyText


class Placeholder(Payload):
    name: PlaceholderName
    type: Literal["text", "date", "phone", "email", "case_number"]
    required: bool = True
    description: ShortText | None = None
    sample: Annotated[
        ShortText | None,
        Field(
            description="A made-up value of the placeholder's type for previews (the template studio, "
            "a test print); never a real pupil's. Dates as YYYY-MM-DD."
        ),
    ] = None


class TemplatePublished(Payload):
    """A template bundle. Connectors render it locally, treating it as untrusted."""

    template_id: Slug
    version: SemVer
    publisher: TenantCode
    title: ShortText
    languages: Annotated[
        dict[Language, TemplateText],
        Field(min_length=1, max_length=6, description="One entry per language; `nl` required."),
    ]
    placeholders: Annotated[list[Placeholder], Field(max_length=50)] = []

    @field_validator("languages")
    @classmethod
    def _dutch_and_directions(cls, v: dict[str, TemplateText]) -> dict[str, TemplateText]:
        if "nl" not in v:
            raise PydanticCustomError("missing_dutch", "a template must have a Dutch (nl) text")
        for lang, text in v.items():
            expected = "rtl" if lang in RTL_LANGUAGES else "ltr"
            if text.direction != expected:
                raise PydanticCustomError(
                    "direction",
                    "{lang} is written {expected}",
                    {"lang": lang, "expected": expected},
                )
        return v

    @field_validator("placeholders")
    @classmethod
    def _unique_placeholders(cls, v: list[Placeholder]) -> list[Placeholder]:
        if len({p.name for p in v}) != len(v):
            raise PydanticCustomError("duplicate", "placeholder names must be unique")
        return v


class TemplateWithdrawn(Payload):
    template_id: Slug
    version: SemVer
    reason: ShortText


# --- transfers ----------------------------------------------------------------------------


class Address(Payload):
    """A Dutch address as the BAG has it (house number, letter, addition)."""

    street: ShortText
    house_number: Annotated[int, Field(ge=1, le=99999)]
    house_letter: Annotated[str | None, Field(pattern=r"^[A-Za-z]$")] = None
    house_number_addition: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9]{1,4}$")] = None
    postcode: Postcode
    city: ShortText
    municipality: CbsCode


class Pupil(Payload):
    bsn: BSN
    given_names: ShortText
    family_name_prefix: NamePrefix | None = None
    family_name: ShortText
    birth_date: BirthDate


class Guardian(Payload):
    given_names: ShortText | None = None
    family_name_prefix: NamePrefix | None = None
    family_name: ShortText
    relation: Literal["parent", "guardian", "foster_parent", "other"]
    phone: Phone | None = None
    email: Email | None = None
    preferred_language: Language = "nl"


class School(Payload):
    brin: BrinCode
    name: ShortText
    level: Literal["po", "vo", "mbo"]


ExemptionReason = Literal[
    "physical_or_mental",  # Leerplichtwet art. 5 sub a
    "objection_to_denomination",  # art. 5 sub b
    "school_abroad",  # art. 5 sub c
    "alternative_programme",
    "other",
]


class CompulsoryEducation(Payload):
    """Leerplichtig, kwalificatieplichtig, or exempt (vrijstelling, with its reason)."""

    status: Literal["leerplichtig", "kwalificatieplichtig", "vrijstelling"]
    exemption_reason: Annotated[
        ExemptionReason | None,
        Field(validate_default=True, description="Required when status is vrijstelling."),
    ] = None
    exemption_until: IsoDate | None = None

    @field_validator("exemption_reason")
    @classmethod
    def _reason_iff_exempt(cls, v: ExemptionReason | None, info: ValidationInfo) -> ExemptionReason | None:
        status = info.data.get("status")
        if status == "vrijstelling" and v is None:
            raise PydanticCustomError("missing", "required when status is vrijstelling")
        if status is not None and status != "vrijstelling" and v is not None:
            raise PydanticCustomError("unexpected", "only allowed when status is vrijstelling")
        return v


class AbsenceCase(Payload):
    """The open absence (verzuim) case, summarised."""

    case_number: Identifier
    kind: Literal["absoluut_verzuim", "relatief_verzuim", "luxeverzuim", "thuiszitter", "other"]
    opened_on: PastDate
    summary: LongText


class ContactAttempt(Payload):
    kind: Literal["phone", "letter", "home_visit", "door_note", "email"]
    at: PastDateTime
    by: ShortText
    outcome: Literal["reached", "not_reached", "returned_undeliverable", "no_response", "other"]
    note: Note | None = None


class LegalBasis(Payload):
    """The article of law a transfer rests on (AVG article 6(1)(c)/(e)): a stable code for
    systems and the citation as people read it."""

    code: Annotated[
        Slug,
        Field(description="A stable code for the article, e.g. `lpw-1969-art-18`."),
    ]
    citation: Annotated[
        ShortText,
        Field(description="The article cited as people read it, e.g. `Leerplichtwet 1969, artikel 18`."),
    ]


class TransferOffered(Payload):
    """The pupil file (dossier) one municipality hands to another. Sealed: personal data."""

    transfer_id: Identifier
    pupil: Pupil
    previous_address: Address
    new_address: Annotated[Address | None, Field(description="null when not (yet) known")]
    moved_on: PastDate | None = None
    guardians: Annotated[list[Guardian], Field(max_length=6)]
    school: Annotated[School | None, Field(description="null when not enrolled")]
    compulsory_education: CompulsoryEducation
    absence_case: AbsenceCase | None = None
    contact_attempts: Annotated[list[ContactAttempt], Field(max_length=100)] = []
    notes: LongText | None = None
    legal_basis: Annotated[
        LegalBasis | None,
        Field(description="The article of law the transfer rests on (absent in older dossiers)."),
    ] = None


class TransferNote(Payload):
    """`transfer.accepted`, `transfer.completed`, `transfer.cancelled`."""

    transfer_id: Identifier
    note: LongText | None = None


class TransferAccepted(TransferNote):
    pass


class TransferCompleted(TransferNote):
    pass


class TransferCancelled(TransferNote):
    pass


class TransferRejected(Payload):
    transfer_id: Identifier
    reason: Literal["not_resident", "unknown_address", "already_registered", "other"]
    note: Annotated[
        LongText | None,
        Field(validate_default=True, description="Required when reason is other."),
    ] = None

    @field_validator("note")
    @classmethod
    def _note_for_other(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("reason") == "other" and not (v and v.strip()):
            raise PydanticCustomError("missing", "required when reason is other")
        return v


class TransferExpired(Payload):
    transfer_id: Identifier
    expired_at: Timestamp


class TransferReminder(Payload):
    """The hub reminds the receiver that an offer awaits its answer (no personal data)."""

    transfer_id: Identifier
    offerer: TenantCode
    deadline: Timestamp


# --- neighbour notices --------------------------------------------------------------------


class ContactPoint(Payload):
    """An organisational contact point (a department), never a pupil."""

    department: ShortText
    phone: Phone
    email: Email


class ContactPerson(Payload):
    name: ShortText
    department: ShortText | None = None
    phone: Phone | None = None
    email: Email | None = None


class PupilMissing(Payload):
    """Asks the group whether anyone registers this pupil. Signed, not sealed: it carries no
    personal data — only a blind index under a key the hub never sees."""

    notice_id: Identifier
    blind_index: BlindIndex
    group_key_id: KeyId
    contact: ContactPoint
    deadline: Timestamp


class PupilFound(Payload):
    """What the finder knows, sent to the asker alone."""

    notice_id: Identifier
    registered_since: PastDate | None = None
    school: School | None = None
    contact: ContactPerson


class NoticeClosed(Payload):
    notice_id: Identifier
    reason: Literal["found", "withdrawn", "expired"]


# --- keys ---------------------------------------------------------------------------------


class GroupKeyShared(Payload):
    """A group's blind-index key, sent by a member to the others (sealed to each)."""

    group: Annotated[
        str,
        Field(
            pattern=r"^[a-z][a-z0-9-]{1,62}$",
            description="The group's name, without the `group:` recipient prefix.",
        ),
    ]
    key_id: KeyId
    alg: Literal["HMAC-SHA256"] = "HMAC-SHA256"
    key: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9_-]+$",
            min_length=43,
            max_length=172,
            description="The key material, base64url without padding (32..128 bytes).",
        ),
    ]


class KeyRotated(Payload):
    tenant: TenantCode
    kids: Annotated[list[KeyId], Field(min_length=1, max_length=20)]


class HubKeyReplacementRefused(Payload):
    """The hub refused to replace this tenant's published keys: a caller with the tenant's
    API token presented other keys without a rotation proof by a current key. The tenant's
    real connector logs it: another installation may be using its credentials."""

    tenant: TenantCode
    presented_kids: Annotated[list[KeyId], Field(min_length=1, max_length=20)]
    current_kids: Annotated[list[KeyId], Field(min_length=1, max_length=20)]
    reason: Literal["proof_missing", "proof_invalid"]


class HubAlert(Payload):
    """The hub raised or cleared an alert about this tenant (`hub.alerts`): its inbox without a
    connector reading, an old backlog, a full inbox, or its case system's webhook failing. The
    same document is posted to the hub operator's webhook. No personal data: codes and counts."""

    alert_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    tenant: TenantCode
    kind: Literal["inbox_offline", "inbox_backlog", "inbox_full", "webhook_failing"]
    state: Literal["raised", "cleared"]
    detail: Annotated[str, Field(max_length=200)]
    since: Timestamp
    raised_at: Timestamp
    cleared_at: Timestamp | None = None


# --- the catalogue ------------------------------------------------------------------------


@dataclass(frozen=True)
class EventSpec:
    short_type: str
    model: type[Payload]
    version: int = 1
    protection: Protection = "none"
    hub_only: bool = False

    @property
    def type(self) -> str:
        return TYPE_PREFIX + self.short_type

    @property
    def dataschema(self) -> str:
        return f"{SCHEMA_BASE}/{self.short_type}/v{self.version}.json"

    @property
    def schema_file(self) -> str:
        """The exported JSON Schema's file name under `schemas/jsonschema/`."""
        return f"{self.short_type}.v{self.version}.json"


_SPECS: tuple[EventSpec, ...] = (
    EventSpec("ping", Ping),
    EventSpec("hub.rejected", HubRejected, hub_only=True),
    EventSpec("receipt", Receipt),
    EventSpec("hub.receipt", HubReceipt, hub_only=True),
    EventSpec("delivery.failed", DeliveryFailed),
    EventSpec("template.published", TemplatePublished, protection="signed"),
    EventSpec("template.withdrawn", TemplateWithdrawn, protection="signed"),
    EventSpec("transfer.offered", TransferOffered, protection="sealed"),
    EventSpec("transfer.accepted", TransferAccepted, protection="sealed"),
    EventSpec("transfer.rejected", TransferRejected, protection="sealed"),
    EventSpec("transfer.completed", TransferCompleted, protection="sealed"),
    EventSpec("transfer.cancelled", TransferCancelled, protection="sealed"),
    EventSpec("transfer.expired", TransferExpired, hub_only=True),
    EventSpec("transfer.reminder", TransferReminder, hub_only=True),
    EventSpec("notice.pupil_missing", PupilMissing, protection="signed"),
    EventSpec("notice.pupil_found", PupilFound, protection="sealed"),
    EventSpec("notice.closed", NoticeClosed, protection="signed"),
    EventSpec("group.key_shared", GroupKeyShared, protection="sealed"),
    EventSpec("key.rotated", KeyRotated, hub_only=True),
    EventSpec("hub.key_replacement_refused", HubKeyReplacementRefused, hub_only=True),
    EventSpec("hub.alert", HubAlert, hub_only=True),
)

EVENTS: dict[str, EventSpec] = {s.type: s for s in _SPECS}


def spec_for(event_type: str) -> EventSpec:
    try:
        return EVENTS[event_type]
    except KeyError:
        raise UnknownType(f"unknown event type {event_type!r}", field="type") from None
