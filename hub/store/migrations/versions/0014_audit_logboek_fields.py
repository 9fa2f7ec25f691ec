"""audit_log: the Logboek dataverwerkingen fields (parent span, end time, status, activity)

Revision ID: 0014
Revises: 0001
Create Date: 2026-12-01 02:00:00

Nullable: records written before stay as they were, and their hashes still verify (a field
that is empty is not part of a record's hash, see hub.audit).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_span_id", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("end_time", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("status_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("processing_activity_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("processing_activity_id")
        batch_op.drop_column("status_code")
        batch_op.drop_column("end_time")
        batch_op.drop_column("parent_span_id")
