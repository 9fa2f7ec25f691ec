"""Tables of the hub. Times are stored as timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """DateTime that always comes back timezone-aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Tenant(Base):
    __tablename__ = "tenants"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # municipality | regional_bureau | association
    oin: Mapped[str | None] = mapped_column(String(20), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    broker_username: Mapped[str | None] = mapped_column(String(200), unique=True)
    # The inbox queue, `inbeeld.inbox.<code>.<random>`: unguessable, so another tenant's
    # passive queue.declare cannot find it (migration 0007). None: not provisioned yet.
    inbox: Mapped[str | None] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set by `inbeeld tenant remove` (migration 0013): the row stays for the audit chain's sake.
    removed_at: Mapped[datetime | None] = mapped_column(default=None)

    memberships: Mapped[list[GroupMember]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan"
    )


class Group(Base):
    __tablename__ = "groups"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(
        back_populates="group", cascade="all, delete-orphan", lazy="selectin"
    )


class GroupMember(Base):
    __tablename__ = "group_members"

    group_name: Mapped[str] = mapped_column(ForeignKey("groups.name", ondelete="CASCADE"), primary_key=True)
    tenant_code: Mapped[str] = mapped_column(ForeignKey("tenants.code", ondelete="CASCADE"), primary_key=True)

    group: Mapped[Group] = relationship(back_populates="members")
    tenant: Mapped[Tenant] = relationship(back_populates="memberships")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))  # operator | tenant
    tenant_code: Mapped[str | None] = mapped_column(ForeignKey("tenants.code"))
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class LedgerEvent(Base):
    """One event the router saw. Metadata only: never `data`."""

    __tablename__ = "ledger_events"
    # De-duplication is keyed on the authenticated sender (the tenant behind the broker user),
    # so no tenant can occupy another's (source, id) with a forged event.
    __table_args__ = (UniqueConstraint("sender", "source", "event_id", name="uq_ledger_sender_source_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    sender: Mapped[str] = mapped_column(String(32), index=True)
    addressed_to: Mapped[list[str]] = mapped_column(default=list)
    # indexed: the verdict on an event refused before it was recorded is found by the subject
    # of the hub.rejected about it (`hub.ledger.verdict_for`)
    subject: Mapped[str | None] = mapped_column(String(100), index=True)
    correlationid: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # received | routed | rejected
    reason: Mapped[str | None] = mapped_column(String(32))
    # A refusal's message (what `hub.rejected` told the sender; never a value of the event).
    # On a rejected event, and on the `hub.rejected` the hub sent about it.
    detail: Mapped[str | None] = mapped_column(String(500), default=None)
    size: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    routed_at: Mapped[datetime | None] = mapped_column(default=None)

    deliveries: Mapped[list[DeliveryRecord]] = relationship(
        back_populates="event", cascade="all, delete-orphan", lazy="selectin"
    )


class DeliveryRecord(Base):
    """One copy of an event for one recipient, with that recipient's sequence number."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("recipient", "sequence", name="uq_delivery_recipient_sequence"),
        Index("ix_deliveries_recipient", "recipient"),
    )

    ledger_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_events.id", ondelete="CASCADE"), primary_key=True
    )
    recipient: Mapped[str] = mapped_column(String(32), primary_key=True)
    sequence: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)  # receipt from recipient

    event: Mapped[LedgerEvent] = relationship(back_populates="deliveries")


class InboxSequence(Base):
    __tablename__ = "inbox_sequences"

    tenant_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))


class DeadLetter(Base):
    """A message the router could not handle at all. The body is kept (for the operator to
    replay once the cause is fixed) only when it is an event whose `data` is a JOSE object
    (signed or sealed); anything else may hold personal data in the clear, so only its size
    and SHA-256 are kept and `body` is empty."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str | None] = mapped_column(String(32), index=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_size: Mapped[int] = mapped_column(Integer, default=0)
    body_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column(default=None)
    discarded_at: Mapped[datetime | None] = mapped_column(default=None)
    discard_reason: Mapped[str | None] = mapped_column(String(200), default=None)


class AuditRecord(Base):
    """Append-only, hash-chained processing log (after Logboek dataverwerkingen)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_chain_seq", "chain", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The chain the record is on (hub.audit.chain_of; revision 0017, `legacy` before).
    chain: Mapped[str] = mapped_column(String(40))
    time: Mapped[datetime] = mapped_column(default=utcnow)
    trace_id: Mapped[str | None] = mapped_column(String(32))
    span_id: Mapped[str | None] = mapped_column(String(16))
    activity: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    subject_ref: Mapped[str | None] = mapped_column(String(100))
    sender: Mapped[str | None] = mapped_column(String(32))
    recipients: Mapped[list[str]] = mapped_column(default=list)
    outcome: Mapped[str] = mapped_column(String(32))
    # Logboek dataverwerkingen (revision 0014; empty on older records): `time` is the start.
    parent_span_id: Mapped[str | None] = mapped_column(String(16), default=None)
    end_time: Mapped[datetime | None] = mapped_column(default=None)
    status_code: Mapped[int | None] = mapped_column(default=None)
    processing_activity_id: Mapped[str | None] = mapped_column(String(200), default=None)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)  # no forks (each chain
    # starts at a genesis of its own, so unique over all chains)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class TenantKey(Base):
    """A tenant's public key in the hub's key directory (DESIGN section 6). Public JWKs only:
    the API refuses a JWK with private members before anything is stored."""

    __tablename__ = "tenant_keys"
    __table_args__ = (UniqueConstraint("tenant_code", "kid", name="uq_tenant_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_code: Mapped[str] = mapped_column(ForeignKey("tenants.code", ondelete="CASCADE"), index=True)
    kid: Mapped[str] = mapped_column(String(64))  # RFC 7638 thumbprint
    use: Mapped[str] = mapped_column(String(3))  # sig | enc
    jwk: Mapped[dict[str, Any]] = mapped_column()  # kty, crv, x, kid, use, alg
    status: Mapped[str] = mapped_column(String(16))  # primary | pending | retired | withdrawn
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notice(Base):
    """A neighbour notice the hub routed (hub.workflows.notices). Metadata only: the blind
    index, the contact point and every answer's content stay out of the hub's store."""

    __tablename__ = "notices"

    asker: Mapped[str] = mapped_column(String(32), primary_key=True)
    notice_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))  # the notice.pupil_missing
    addressed: Mapped[list[str]] = mapped_column(default=list)  # as the asker wrote it
    recipients: Mapped[list[str]] = mapped_column(default=list)  # tenants it went to
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | closed | expired
    deadline: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    close_event_id: Mapped[str | None] = mapped_column(String(64))
    close_reason: Mapped[str | None] = mapped_column(String(16))


class NoticeAnswer(Base):
    """One `notice.pupil_found` routed for a notice: who answered, when (never what)."""

    __tablename__ = "notice_answers"
    __table_args__ = (Index("ix_notice_answers_notice", "asker", "notice_id"),)

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    asker: Mapped[str] = mapped_column(String(32))
    notice_id: Mapped[str] = mapped_column(String(64))
    responder: Mapped[str] = mapped_column(String(32), index=True)
    answered_at: Mapped[datetime] = mapped_column(default=utcnow)


class Transfer(Base):
    """A pupil transfer the hub routed (hub.workflows.transfers): parties, state and times
    only. The dossier travels sealed and is never stored here. `transfer_id` is the envelope's
    `subject`, unique across the hub."""

    __tablename__ = "transfers"
    __table_args__ = (Index("ix_transfers_state_deadline", "state", "deadline_at"),)

    transfer_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    offerer: Mapped[str] = mapped_column(String(32), index=True)
    receiver: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16))  # schemas.transfers.State
    offered_at: Mapped[datetime] = mapped_column()
    deadline_at: Mapped[datetime] = mapped_column()  # an unanswered offer expires then
    remind_at: Mapped[datetime | None] = mapped_column(default=None)
    reminded_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column()  # the last step
    closed_at: Mapped[datetime | None] = mapped_column(default=None)

    steps: Mapped[list[TransferStep]] = relationship(
        back_populates="transfer", cascade="all, delete-orphan", order_by="TransferStep.id"
    )


class TransferStep(Base):
    """One step of a transfer's timeline: who took it (`actor`), for whom when a regional
    bureau acted for a member (`acted_for`), when, and by which event."""

    __tablename__ = "transfer_steps"
    __table_args__ = (UniqueConstraint("transfer_id", "event_id", name="uq_transfer_step_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    transfer_id: Mapped[str] = mapped_column(
        ForeignKey("transfers.transfer_id", ondelete="CASCADE"), index=True
    )
    step: Mapped[str] = mapped_column(String(16))  # offered | accepted | ... | reminder
    actor: Mapped[str] = mapped_column(String(32))  # a tenant code, or "hub"
    acted_for: Mapped[str | None] = mapped_column(String(32), default=None)
    at: Mapped[datetime] = mapped_column()
    event_id: Mapped[str] = mapped_column(String(64))

    transfer: Mapped[Transfer] = relationship(back_populates="steps")


class Subscription(Base):
    """A tenant follows a publisher's templates (`publisher` a tenant code, or `*` for all);
    hub.workflows.templates fans `template.*` out to the followers."""

    __tablename__ = "template_subscriptions"

    tenant_code: Mapped[str] = mapped_column(ForeignKey("tenants.code", ondelete="CASCADE"), primary_key=True)
    publisher: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PublishedTemplate(Base):
    """The hub's template catalogue (hub.workflows.templates): which template versions a
    publisher released and withdrew, with a digest of the signed bundle, never its text."""

    __tablename__ = "template_catalogue"

    template_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    publisher: Mapped[str] = mapped_column(String(32), index=True)
    title: Mapped[str] = mapped_column(String(200))
    languages: Mapped[list[str]] = mapped_column(default=list)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical bundle JSON
    event_id: Mapped[str] = mapped_column(String(64))  # the first template.published
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(default=None)
    withdraw_reason: Mapped[str | None] = mapped_column(String(200), default=None)
    withdraw_event_id: Mapped[str | None] = mapped_column(String(64), default=None)


class OperatorLogin(Base):
    """A person who may log in to the operator console (beside the operator API tokens)."""

    __tablename__ = "operator_logins"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # Argon2id, PHC string
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)


class Alert(Base):
    """A condition the operator should act on (hub.alerts): pending while it has not lasted
    long enough, raised, then cleared when it went away. `open_key` is `<tenant>:<kind>` until
    cleared (unique: one open alert per tenant and kind, however many hub processes evaluate)."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("open_key", name="uq_alerts_open_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    open_key: Mapped[str | None] = mapped_column(String(80))
    detail: Mapped[str] = mapped_column(String(200), default="")
    since: Mapped[datetime] = mapped_column(default=utcnow)  # the condition first seen
    raised_at: Mapped[datetime | None] = mapped_column(default=None)  # None: pending
    cleared_at: Mapped[datetime | None] = mapped_column(default=None)
    marker: Mapped[int | None] = mapped_column(BigInteger, default=None)  # inbox acks when last seen
    raise_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    clear_notified: Mapped[bool] = mapped_column(Boolean, default=False)


class HubOutboxCopy(Base):
    """A hub event's copy for one inbox, written in the same transaction as the change it
    announces and deleted once published (hub.publisher): what a broker failure right after
    the commit kept from leaving is published later by a router's sweep, with the same id and
    sequence. Hub events carry no personal data."""

    __tablename__ = "hub_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(100))
    recipient: Mapped[str] = mapped_column(String(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # the envelope, its sequence stamped
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RetainedCopy(Base):
    """A copy as it was published to one inbox: the exact body (the envelope, its sequence
    stamped; sealed data stays ciphertext, the hub never decrypts) and the properties to publish
    it again identically. Written with the delivery records in the router's batch transaction,
    kept `INBEELD_RETENTION_DAYS` (hub.retention) so a tenant can resync its inbox after an
    outage."""

    __tablename__ = "retained_copies"
    __table_args__ = (
        UniqueConstraint("recipient", "sequence", name="uq_retained_recipient_sequence"),
        Index("ix_retained_copies_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    recipient: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
