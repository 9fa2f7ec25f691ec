"""ledger_events.detail: a refusal's message, so its sender can ask for the verdict

Revision ID: 0010
Revises: 0001
Create Date: 2026-11-30 21:00:00

The ledger kept a refused event's reason code only; what the `hub.rejected` told the sender
(its message, never a value of the event) went to the sender's inbox and nowhere else. A
command that sends an event now asks the hub for the verdict (`GET /ledger/{id}/verdict`),
and shows the reason and this message when it is refused. Set on a rejected event and on the
`hub.rejected` about it. The subject is indexed: an event refused before it was recorded
(a source not the sender's, over its rate) is found by the subject of that `hub.rejected`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.String(length=500), nullable=True))
        batch_op.create_index("ix_ledger_events_subject", ["subject"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger_events", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_events_subject")
        batch_op.drop_column("detail")
