"""audit_log.chain: one hash chain per tenant (hub.audit)

Revision ID: 0017
Revises: 0001
Create Date: 2026-12-01 11:00:00

Every record names its chain. The records written before, one chain for the whole hub, are
kept as they are on the closed chain `legacy`: their hashes are not recomputed (that would
undo what they prove), and they still verify from the genesis hash they were chained on. New
records chain per tenant, each chain from its own genesis (`schemas.audit_chain.genesis`), so
`prev_hash` stays unique over the whole table and no chain can fork.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        # The default fills the records already there; new ones always name their chain.
        batch_op.add_column(sa.Column("chain", sa.String(length=40), nullable=False, server_default="legacy"))
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("chain", server_default=None, existing_type=sa.String(length=40))
        batch_op.create_index("ix_audit_log_chain_seq", ["chain", "seq"], unique=False)


def downgrade() -> None:
    # Only while every record is still on the one chain: per-tenant chains cannot be merged
    # back into one without recomputing their hashes.
    kept = op.get_bind().scalar(sa.text("SELECT count(*) FROM audit_log WHERE chain <> 'legacy'"))
    if kept:
        raise RuntimeError(f"{kept} audit records are on per-tenant chains; they cannot be made one chain")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_chain_seq")
        batch_op.drop_column("chain")
