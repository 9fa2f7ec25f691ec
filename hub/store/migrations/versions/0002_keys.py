"""key directory: tenant_keys (public JWKs per tenant)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_code", sa.String(length=32), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("use", sa.String(length=3), nullable=False),
        sa.Column("jwk", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_code"], ["tenants.code"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_code", "kid", name="uq_tenant_key"),
    )
    with op.batch_alter_table("tenant_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tenant_keys_tenant_code"), ["tenant_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tenant_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tenant_keys_tenant_code"))
    op.drop_table("tenant_keys")
