"""templates: template_subscriptions, template_catalogue (metadata only)

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-27 10:00:00

The default subscriptions (every municipality follows `ingrado`) are data, not schema:
`hub.seed.seed_all` adds them through `hub.seed.seed_subscriptions`, after the seed tenants
exist.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_subscriptions",
        sa.Column("tenant_code", sa.String(length=32), nullable=False),
        sa.Column("publisher", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_code"], ["tenants.code"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_code", "publisher"),
    )
    with op.batch_alter_table("template_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_template_subscriptions_publisher"), ["publisher"], unique=False
        )
    op.create_table(
        "template_catalogue",
        sa.Column("template_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("publisher", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdraw_reason", sa.String(length=200), nullable=True),
        sa.Column("withdraw_event_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("template_id", "version"),
    )
    with op.batch_alter_table("template_catalogue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_template_catalogue_publisher"), ["publisher"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("template_catalogue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_template_catalogue_publisher"))
    op.drop_table("template_catalogue")
    with op.batch_alter_table("template_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_template_subscriptions_publisher"))
    op.drop_table("template_subscriptions")
