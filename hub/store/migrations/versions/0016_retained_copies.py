"""retained_copies: each delivered copy, kept for a tenant's resync after an outage (hub.retention)

Revision ID: 0016
Revises: 0001
Create Date: 2026-12-01 11:00:00

The exact body the router published to one inbox (the envelope with its sequence; sealed data
stays ciphertext), its message id and type, written with the delivery records in the router's
batch transaction and deleted by a router's sweep after `INBEELD_RETENTION_DAYS`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retained_copies",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("recipient", "sequence", name="uq_retained_recipient_sequence"),
    )
    op.create_index("ix_retained_copies_created_at", "retained_copies", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_retained_copies_created_at", table_name="retained_copies")
    op.drop_table("retained_copies")
