"""alerts: conditions an operator acts on, raised and cleared (hub.alerts)

Revision ID: 0012
Revises: 0001
Create Date: 2026-12-01 02:00:00

One row per alert: a tenant's inbox without a consumer or with an old backlog, a full inbox,
a webhook failing at the tenant's connector. `open_key` (`<tenant>:<kind>`, unique, NULL once
cleared) makes raising idempotent however many hub processes evaluate; the two `*_notified`
flags are claimed by one process, so each raising and clearing is sent once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("open_key", sa.String(length=80), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("marker", sa.BigInteger(), nullable=True),
        sa.Column("raise_notified", sa.Boolean(), nullable=False),
        sa.Column("clear_notified", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("open_key", name="uq_alerts_open_key"),
    )
    op.create_index("ix_alerts_tenant", "alerts", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_alerts_tenant", table_name="alerts")
    op.drop_table("alerts")
