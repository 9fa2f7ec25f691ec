"""trust: ledger de-duplicated on the authenticated sender; dead letters keep a digest

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-30 17:00:00

`ledger_events` was unique on (source, event_id), recorded before the source was checked: a
forged event occupied the real owner's id. It is now unique on (sender, source, event_id).
`dead_letters` gains `body_size` and `body_sha256`: a body that is not a signed or sealed
event is no longer kept, only its size and digest. Existing rows are given both; their
bodies are left as they are (the operator may purge them with the retention they apply).
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ledger_source_id", type_="unique")
        batch_op.create_unique_constraint("uq_ledger_sender_source_id", ["sender", "source", "event_id"])
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_size", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, body FROM dead_letters")).all()
    for row_id, body in rows:
        body = bytes(body or b"")
        conn.execute(
            sa.text("UPDATE dead_letters SET body_size = :n, body_sha256 = :h WHERE id = :id"),
            {"n": len(body), "h": hashlib.sha256(body).hexdigest(), "id": row_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_column("body_sha256")
        batch_op.drop_column("body_size")
    with op.batch_alter_table("ledger_events", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ledger_sender_source_id", type_="unique")
        batch_op.create_unique_constraint("uq_ledger_source_id", ["source", "event_id"])
