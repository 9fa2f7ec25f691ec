"""tenants.removed_at: a tenant the operator removed

Revision ID: 0013
Revises: 0001
Create Date: 2026-12-01 02:15:00

`inbeeld tenant remove` keeps the tenant's row, marked removed (inactive, no broker user, no
inbox, no groups, subscriptions or working tokens, keys withdrawn), so the audit chain and the
ledger keep naming a tenant the registry still knows, and its code is never given to another.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("removed_at")
