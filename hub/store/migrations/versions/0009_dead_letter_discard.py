"""dead_letters: an operator may discard one, with a reason

Revision ID: 0009
Revises: 0001
Create Date: 2026-11-30 21:10:00

A dead letter the operator will not replay (its cause cannot be fixed, or the sender sent it
again) is discarded: `discarded_at` and `discard_reason` are set, its kept body is dropped,
and it no longer counts as waiting.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("discarded_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("discard_reason", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("discard_reason")
        batch_op.drop_column("discarded_at")
