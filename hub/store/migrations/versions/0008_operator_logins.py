"""operator_logins: the hub operators who may log in to the web console

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-30 20:10:00

A person's login (name and Argon2 password hash) for the console at /console, beside the
operator API tokens (which stay as they are). `failed_attempts` and `locked_until` throttle
password guessing: after a run of failures the login waits before it is tried again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_logins",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("operator_logins")
