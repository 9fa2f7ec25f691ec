"""processing log: the data subject's keyed index and the legal basis of each record

A pupil's access report (AVG article 15) lists everything this municipality exchanged about
him from the processing log: `subject_index` (an HMAC of the BSN under a key derived from the
at-rest secret, like the register's `bsn_index`) finds his records without decrypting every
one, and `legal_basis` keeps the article of law a transfer's offer named. Records written
before this revision have neither: they are about no one the report can name.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processing_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("subject_index", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("legal_basis", sa.String(length=300), nullable=True))
        batch_op.create_index("ix_processing_log_subject_index", ["subject_index"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processing_log", schema=None) as batch_op:
        batch_op.drop_index("ix_processing_log_subject_index")
        batch_op.drop_column("legal_basis")
        batch_op.drop_column("subject_index")
