"""pupil transfers: transfers, transfer_steps (states and times only)

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("transfer_id", sa.String(length=100), nullable=False),
        sa.Column("offerer", sa.String(length=32), nullable=False),
        sa.Column("receiver", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("transfer_id"),
    )
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfers_offerer"), ["offerer"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfers_receiver"), ["receiver"], unique=False)
        batch_op.create_index("ix_transfers_state_deadline", ["state", "deadline_at"], unique=False)

    op.create_table(
        "transfer_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("transfer_id", sa.String(length=100), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("acted_for", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.transfer_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("transfer_id", "event_id", name="uq_transfer_step_event"),
    )
    with op.batch_alter_table("transfer_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfer_steps_transfer_id"), ["transfer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transfer_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfer_steps_transfer_id"))
    op.drop_table("transfer_steps")
    with op.batch_alter_table("transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_transfers_state_deadline")
        batch_op.drop_index(batch_op.f("ix_transfers_receiver"))
        batch_op.drop_index(batch_op.f("ix_transfers_offerer"))
    op.drop_table("transfers")
