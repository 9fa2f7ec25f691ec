"""workspace: local accounts, who did what in the processing log, received transfer offers

The connector's web workspace (`inbeeld-connector serve`) logs people in with local accounts
(`inbeeld-connector user add`), writes every view of a dossier to the processing log (with the
person's name and the transfer it concerns), and keeps the transfer offers received (dossier
encrypted at rest) for its werkbak.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 02:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_users",
        sa.Column("name", sa.String(length=40), primary_key=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=True),
        sa.Column("last_login_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    with op.batch_alter_table("processing_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_name", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("subject", sa.String(length=100), nullable=True))
    op.create_table(
        "transfer_offers",
        sa.Column("transfer_id", sa.String(length=100), primary_key=True),
        sa.Column("offerer", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("wrapped_key", sa.String(length=200), nullable=False),
        sa.Column("dossier", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("answered_by", sa.String(length=40), nullable=True),
        sa.Column("answered_at", sa.Float(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("transfer_offers")
    with op.batch_alter_table("processing_log", schema=None) as batch_op:
        batch_op.drop_column("subject")
        batch_op.drop_column("user_name")
    op.drop_table("workspace_users")
