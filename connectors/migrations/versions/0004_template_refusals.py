"""template_refusals: received bundles that fail the publisher's checks are kept aside

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_refusals",
        sa.Column("template_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("publisher", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=True),
        sa.Column("refused_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("template_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("template_refusals")
