"""processing log: non-personal attributes of a record (a rendered letter's template)

A letter rendered about a pupil (`inbeeld-connector letter render --bsn-stdin`, `letter batch`
with a `bsn` column) is a processing-log record of its own, listed in the pupil's access
report: `attributes` keeps, as JSON, what the report says of it and nothing personal (the
template's id and version, the languages, the kind of addressee). Older records have none.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processing_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attributes", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processing_log", schema=None) as batch_op:
        batch_op.drop_column("attributes")
