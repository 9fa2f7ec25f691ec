"""The connector's local store schema: every table of its database, in one `MetaData`.

The database is migrated by the alembic history in `connectors.migrations` (run when
`connectors.store.LocalStore.open` opens it); a change here needs a revision there, and
`tests/connectors/test_store_schema.py` checks the two agree.

    received        every event processed, by (source, id): de-duplication across restarts
    state           small key/value facts, e.g. the last inbox `sequence` seen (gap detection)
    outbox          what durable sinks (webhook) still have to deliver, with retry bookkeeping;
                    an event the receiver refuses for good is parked, and the later events of
                    its `subject` wait behind it (`connectors.outbox`)
    templates       the local template catalogue (bundles as received)
    template_withdrawals  withdrawn template versions (`connectors.templates`)
    hub_replies     what became of what we sent: `hub.rejected` / `hub.receipt` / a recipient's
                    `delivery.failed` (metadata)
    pupils          the local pupil register; every personal column encrypted at rest
    notices         neighbour notices asked and received (`connectors.notices`)
    notice_audit    the hash-chained local audit of notices (`schemas.audit_chain`)
    group_keys      the group keys of blind indexes, encrypted at rest (`connectors.group_keys`)
    processing_log  every event sent and received with the Logboek dataverwerkingen fields
                    (`schemas.processing_log`); the data subject (a BSN) encrypted at rest,
                    found through its keyed index
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "group_keys",
    "hub_replies",
    "local_notices",
    "metadata",
    "notice_audit",
    "outbox",
    "processing_log",
    "pupils",
    "received",
    "state",
    "template_withdrawals",
    "templates",
    "transfer_offers",
    "workspace_users",
]

metadata = MetaData()

received = Table(
    "received",
    metadata,
    Column("source", String(200), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("sequence", Integer),
    Column("received_at", Float, nullable=False),
)

state = Table(
    "state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sink", String(64), nullable=False),
    Column("event_source", String(200), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("wrapped_key", String(200)),  # None: body stored in clear (no keystore configured)
    Column("status", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", String(500)),
    Column("delivered_at", Float),
    Column("stuck_reported", Integer, nullable=False, default=0),
    # The event's subject (e.g. a transfer id): a parked item holds the later ones of its subject.
    Column("subject", String(100)),
    Column("refusals", Integer, nullable=False, default=0, server_default="0"),  # 4xx (not 408/429)
    Column("last_status", Integer),  # the receiver's last HTTP status (None: no answer)
    Column("reason", String(200)),  # parked: why (status and phrase, never the body); dropped: the operator's
    Column("parked_at", Float),
    Column("retried_at", Float),  # an operator's `outbox retry`: retry_days counts from here
    Column("dropped_at", Float),
    UniqueConstraint("sink", "event_source", "event_id"),
    Index("ix_outbox_sink_status", "sink", "status"),
)

templates = Table(
    "templates",
    metadata,
    Column("template_id", String(64), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("publisher", String(32), nullable=False),
    Column("bundle", Text, nullable=False),
    Column("received_at", Float, nullable=False),
)

hub_replies = Table(
    "hub_replies",
    metadata,
    Column("event_id", String(64), primary_key=True),  # the hub's event
    Column("kind", String(16), nullable=False),  # rejected | receipt | delivery_failed
    Column("about", String(64), nullable=False),  # the id of the event we sent
    Column("reason", String(32)),  # rejected: the reason code
    Column("message", String(500)),  # rejected: the hub's message (no personal data)
    Column("field", String(100)),
    Column("recipient", String(32)),  # receipt: who processed it; delivery_failed: who could not
    Column("received_at", Float, nullable=False),
)

pupils = Table(
    "pupils",
    metadata,
    Column("id", String(36), primary_key=True),
    # HMAC of the BSN under a key derived from the at-rest secret: lookups without
    # decrypting every row, and as unreadable as the rest once that secret is shredded.
    Column("bsn_index", String(64), nullable=False, unique=True),
    Column("wrapped_key", String(200), nullable=False),
    Column("bsn", LargeBinary, nullable=False),
    Column("given_names", LargeBinary, nullable=False),
    Column("family_name_prefix", LargeBinary),
    Column("family_name", LargeBinary, nullable=False),
    Column("birth_date", LargeBinary, nullable=False),
    Column("address", LargeBinary, nullable=False),
    Column("school", LargeBinary),
    Column("updated_at", Float, nullable=False),
)

local_notices = Table(
    "notices",
    metadata,
    Column("asker", String(32), primary_key=True),
    Column("notice_id", String(64), primary_key=True),
    Column("role", String(8), nullable=False),  # asked | received
    Column("addressed", Text, nullable=False),  # JSON: the envelope's recipients
    Column("key_id", String(128), nullable=False),
    Column("secret_blob", LargeBinary),  # received and open: the index, encrypted at rest
    Column("wrapped_key", String(200)),
    Column("state", String(8), nullable=False),
    Column("deadline", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("closed_at", Float),
    Column("answered", Integer, nullable=False, default=0),  # received: we answered it
    Column("found_by", Text, nullable=False, default="[]"),  # asked: who answered
    Column("event_id", String(64), nullable=False),
)
notice_audit = Table(
    "notice_audit",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("activity", String(32), nullable=False),
    Column("notice_id", String(64), nullable=False),
    Column("asker", String(32), nullable=False),
    Column("counterpart", String(32)),
    Column("event_id", String(64)),
    Column("outcome", String(32), nullable=False),
    Column("pupil_ref", String(36)),
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False, unique=True),
)

template_withdrawals = Table(
    "template_withdrawals",
    metadata,
    Column("template_id", String(64), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("publisher", String(32), nullable=False),
    Column("reason", String(200), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("withdrawn_at", Float, nullable=False),
)

# Bundles that arrived but failed the publisher's checks (grammar, placeholders, characters,
# sizes): kept aside with the reason, never rendered, never the default.
template_refusals = Table(
    "template_refusals",
    metadata,
    Column("template_id", String(64), primary_key=True),
    Column("version", String(64), primary_key=True),
    Column("publisher", String(32), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", String(300), nullable=False),
    Column("event_id", String(64), nullable=True),
    Column("refused_at", Float, nullable=False),
)

group_keys = Table(
    "group_keys",
    metadata,
    Column("group_name", String(63), primary_key=True),
    Column("key_id", String(128), primary_key=True),
    Column("creator", String(32), nullable=False),
    Column("members", Text, nullable=False),  # JSON list: who was given this key
    Column("key_blob", LargeBinary, nullable=False),
    Column("wrapped_key", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("retired_at", Float),
)

processing_log = Table(
    "processing_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16)),
    Column("name", String(100), nullable=False),
    Column("status_code", Integer, nullable=False),  # 0 unknown, 1 ok, 2 error
    Column("start_time", Float, nullable=False),
    Column("end_time", Float, nullable=False),
    Column("processing_activity_id", String(200), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("counterpart", String(32)),
    Column("data_subject_id", LargeBinary),  # encrypted at rest (the pupil's BSN)
    Column("wrapped_key", String(200)),
    # In the workspace a person acts: who (an account's name) and on what (a transfer's id).
    Column("user_name", String(40)),
    Column("subject", String(100)),  # the transfer, notice or register row it was about
    # HMAC of the data subject's BSN under a key derived from the at-rest secret: a pupil's
    # records are found without decrypting every one (`LocalStore.subject_records`).
    Column("subject_index", String(64)),
    Column("legal_basis", String(300)),  # JSON [code, citation]: the article it rests on
    # JSON {name: value}, never personal data: a rendered letter's template, version, languages
    Column("attributes", String(1000)),
    Index("ix_processing_log_trace_id", "trace_id"),
    Index("ix_processing_log_subject_index", "subject_index"),
)

# The workspace's local accounts (`inbeeld-connector user add`): Argon2id hashes, a role, and
# the throttling state of webui.passwords (times as epoch seconds).
workspace_users = Table(
    "workspace_users",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("failed_attempts", Integer, nullable=False, default=0),
    Column("locked_until", Float),
    Column("last_login_at", Float),
    Column("created_at", Float, nullable=False),
)

# Transfer offers received, with their dossier encrypted at rest like the register, for the
# workspace's werkbak; `state` is what this municipality did with it.
transfer_offers = Table(
    "transfer_offers",
    metadata,
    Column("transfer_id", String(100), primary_key=True),
    Column("offerer", String(32), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("wrapped_key", String(200), nullable=False),
    Column("dossier", LargeBinary, nullable=False),
    Column("state", String(16), nullable=False),
    Column("answered_by", String(40)),
    Column("answered_at", Float),
)
