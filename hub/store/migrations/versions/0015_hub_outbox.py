"""hub_outbox: hub events' copies waiting to be published (hub.publisher)

Revision ID: 0015
Revises: 0001
Create Date: 2026-12-01 06:30:00

Written in the same transaction as the change a hub event announces (a key rotation, an
alert), deleted once the copy is published; a router's sweep publishes what a broker failure
left behind, with the same id and sequence, so the announcement is never lost.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hub_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("recipient", sa.String(length=32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_hub_outbox_event_id", "hub_outbox", ["event_id"])
    op.create_index("ix_hub_outbox_created_at", "hub_outbox", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_hub_outbox_created_at", table_name="hub_outbox")
    op.drop_index("ix_hub_outbox_event_id", table_name="hub_outbox")
    op.drop_table("hub_outbox")
