"""tenants.inbox: the tenant's unguessable inbox queue name

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-30 16:45:00

Inboxes were named `inbeeld.inbox.<code>`, which any tenant could probe with a passive
`queue.declare` (RabbitMQ checks no permission on it) to learn another tenant's message and
consumer counts. Each tenant now gets `inbeeld.inbox.<code>.<random>`, stored here. A NULL
means the tenant still has an old-style inbox (or none yet): `inbeeld migrate` and
`inbeeld tenant provision` give it one and move its waiting messages across.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inbox", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint("uq_tenants_inbox", ["inbox"])


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_constraint("uq_tenants_inbox", type_="unique")
        batch_op.drop_column("inbox")
