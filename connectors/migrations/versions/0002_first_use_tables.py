"""the tables that were made on first use: notices, notice_audit, template_withdrawals,
group_keys

Before the history existed, `connectors.notices`, `connectors.templates` and
`connectors.group_keys` created their tables the first time they were used. An adopted
store has them only if it used those features, so each is created only where it is absent
(a table that exists has exactly this shape: the code that made it is the code below).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list[sa.schema.SchemaItem]]]:
    return [
        (
            "group_keys",
            [
                sa.Column("group_name", sa.String(length=63), nullable=False),
                sa.Column("key_id", sa.String(length=128), nullable=False),
                sa.Column("creator", sa.String(length=32), nullable=False),
                sa.Column("members", sa.Text(), nullable=False),
                sa.Column("key_blob", sa.LargeBinary(), nullable=False),
                sa.Column("wrapped_key", sa.String(length=200), nullable=False),
                sa.Column("created_at", sa.Float(), nullable=False),
                sa.Column("retired_at", sa.Float(), nullable=True),
                sa.PrimaryKeyConstraint("group_name", "key_id"),
            ],
        ),
        (
            "notice_audit",
            [
                sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
                sa.Column("at", sa.Float(), nullable=False),
                sa.Column("activity", sa.String(length=32), nullable=False),
                sa.Column("notice_id", sa.String(length=64), nullable=False),
                sa.Column("asker", sa.String(length=32), nullable=False),
                sa.Column("counterpart", sa.String(length=32), nullable=True),
                sa.Column("event_id", sa.String(length=64), nullable=True),
                sa.Column("outcome", sa.String(length=32), nullable=False),
                sa.Column("pupil_ref", sa.String(length=36), nullable=True),
                sa.Column("prev_hash", sa.String(length=64), nullable=False),
                sa.Column("hash", sa.String(length=64), nullable=False),
                sa.PrimaryKeyConstraint("seq"),
                sa.UniqueConstraint("hash"),
                sa.UniqueConstraint("prev_hash"),
            ],
        ),
        (
            "notices",
            [
                sa.Column("asker", sa.String(length=32), nullable=False),
                sa.Column("notice_id", sa.String(length=64), nullable=False),
                sa.Column("role", sa.String(length=8), nullable=False),
                sa.Column("addressed", sa.Text(), nullable=False),
                sa.Column("key_id", sa.String(length=128), nullable=False),
                sa.Column("secret_blob", sa.LargeBinary(), nullable=True),
                sa.Column("wrapped_key", sa.String(length=200), nullable=True),
                sa.Column("state", sa.String(length=8), nullable=False),
                sa.Column("deadline", sa.Float(), nullable=False),
                sa.Column("created_at", sa.Float(), nullable=False),
                sa.Column("closed_at", sa.Float(), nullable=True),
                sa.Column("answered", sa.Integer(), nullable=False),
                sa.Column("found_by", sa.Text(), nullable=False),
                sa.Column("event_id", sa.String(length=64), nullable=False),
                sa.PrimaryKeyConstraint("asker", "notice_id"),
            ],
        ),
        (
            "template_withdrawals",
            [
                sa.Column("template_id", sa.String(length=64), nullable=False),
                sa.Column("version", sa.String(length=64), nullable=False),
                sa.Column("publisher", sa.String(length=32), nullable=False),
                sa.Column("reason", sa.String(length=200), nullable=False),
                sa.Column("event_id", sa.String(length=64), nullable=False),
                sa.Column("withdrawn_at", sa.Float(), nullable=False),
                sa.PrimaryKeyConstraint("template_id", "version"),
            ],
        ),
    ]


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, items in _tables():
        if name not in existing:
            op.create_table(name, *items)


def downgrade() -> None:
    for name in ("template_withdrawals", "notices", "notice_audit", "group_keys"):
        op.drop_table(name)
