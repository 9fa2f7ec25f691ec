"""notice_audit: re-link the chain under the one audit-chain form (schemas.audit_chain)

The notice audit used to hash `json.dumps([prev_hash, *fields])`; the hub and now the
connector hash `sha256(f"{prev_hash}|{canonical fields}")` (`schemas.audit_chain.link`).
The existing chain is verified under the old form first, and re-linked only if it holds:
a chain that does not verify is refused, naming its first bad record, never re-blessed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 20:00:00
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from alembic import op

from schemas.audit_chain import GENESIS, AuditChainBroken, link

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# What a record's hash covers, in the order the old form listed them.
_FIELDS = ("at", "activity", "notice_id", "asker", "counterpart", "event_id", "outcome", "pupil_ref")

_audit = sa.table(
    "notice_audit",
    sa.column("seq", sa.Integer()),
    *(sa.column(name) for name in _FIELDS),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


Linker = Callable[[str, Mapping[str, Any]], str]


def _old_link(prev_hash: str, row: Mapping[str, Any]) -> str:
    body = json.dumps([prev_hash, *(row[name] for name in _FIELDS)], separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def _new_link(prev_hash: str, row: Mapping[str, Any]) -> str:
    return link(prev_hash, {name: row[name] for name in _FIELDS})


def _relink(verify_with: Linker, link_with: Linker, form: str) -> None:
    """Verify the chain with `verify_with`, then re-link every record with `link_with`."""
    bind = op.get_bind()
    rows = [dict(r) for r in bind.execute(sa.select(_audit).order_by(_audit.c.seq)).mappings()]
    prev = GENESIS
    for row in rows:
        if row["prev_hash"] != prev or row["hash"] != verify_with(prev, row):
            raise AuditChainBroken(
                f"the notice audit chain does not verify under the {form} form at record "
                f"seq={row['seq']} ({row['activity']} of notice {row['notice_id']}): it was altered, "
                "removed or reordered; not re-linking it (restore the store from a backup)",
                seq=row["seq"],
            )
        prev = row["hash"]
    prev = GENESIS
    for row in rows:
        new_hash = link_with(prev, row)
        bind.execute(
            sa.update(_audit).where(_audit.c.seq == row["seq"]).values(prev_hash=prev, hash=new_hash)
        )
        prev = new_hash


def upgrade() -> None:
    _relink(_old_link, _new_link, "old")


def downgrade() -> None:
    _relink(_new_link, _old_link, "current")
