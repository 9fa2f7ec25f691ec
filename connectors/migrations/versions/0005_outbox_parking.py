"""outbox: park events the receiver refuses for good; hold the later ones of their subject

A webhook answer of 4xx (other than 408 and 429) is a refusal that retrying will not change:
after `park_after` of them the item is parked instead of blocking the queue for `retry_days`,
and the later items of its subject wait behind it (`connectors.outbox`). Existing rows get no
subject (they hold nothing) and zero refusals.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_COLUMNS = ("subject", "refusals", "last_status", "reason", "parked_at", "retried_at", "dropped_at")


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("subject", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_status", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("parked_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("retried_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("dropped_at", sa.Float(), nullable=True))
        batch.create_index("ix_outbox_sink_status", ["sink", "status"])


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index("ix_outbox_sink_status")
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
