"""neighbour notices: notices, notice_answers (metadata only)

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-26 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("asker", sa.String(length=32), nullable=False),
        sa.Column("notice_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("addressed", sa.JSON(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_event_id", sa.String(length=64), nullable=True),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("asker", "notice_id"),
    )
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notices_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_notices_deadline"), ["deadline"], unique=False)
    op.create_table(
        "notice_answers",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("asker", sa.String(length=32), nullable=False),
        sa.Column("notice_id", sa.String(length=64), nullable=False),
        sa.Column("responder", sa.String(length=32), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "source"),
    )
    with op.batch_alter_table("notice_answers", schema=None) as batch_op:
        batch_op.create_index("ix_notice_answers_notice", ["asker", "notice_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notice_answers_responder"), ["responder"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notice_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notice_answers_responder"))
        batch_op.drop_index("ix_notice_answers_notice")
    op.drop_table("notice_answers")
    with op.batch_alter_table("notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notices_deadline"))
        batch_op.drop_index(batch_op.f("ix_notices_state"))
    op.drop_table("notices")
