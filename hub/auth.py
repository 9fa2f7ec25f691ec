"""API bearer tokens: random, shown once, stored as SHA-256 hashes, revocable, scoped.

A token is high-entropy (256 bits), so a fast hash is the right tool here (no password
stretching needed); comparison happens inside the database lookup by hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hub import registry
from hub.store.models import ApiToken, utcnow
from schemas.errors import Conflict, NotFound

Scope = Literal["operator", "tenant"]
PREFIX = "inb_"


class LastOperatorToken(Conflict):
    """Revoking it would lock the operator out of the API."""

    reason = "last_operator_token"


class AlreadyRevoked(Conflict):
    reason = "already_revoked"


@dataclass(frozen=True)
class Principal:
    scope: Scope
    tenant: str | None
    token_id: int

    @property
    def is_operator(self) -> bool:
        return self.scope == "operator"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(s: AsyncSession, scope: Scope, tenant: str | None = None, label: str = "") -> tuple[int, str]:
    """Create a token; returns (id, plaintext). The plaintext is not kept anywhere."""
    if scope == "tenant":
        if tenant is None:
            raise ValueError("a tenant token needs a tenant")
        await registry.get_tenant(s, tenant)
    elif tenant is not None:
        raise ValueError("an operator token belongs to no tenant")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(token_hash=hash_token(token), scope=scope, tenant_code=tenant, label=label)
    s.add(row)
    await s.flush()
    return row.id, token


async def authenticate(s: AsyncSession, token: str) -> Principal | None:
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    row = await s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    if row.scope == "tenant":
        assert row.tenant_code is not None
        tenant = await registry.get_tenant(s, row.tenant_code)
        if not tenant.active:
            return None
        return Principal("tenant", tenant.code, row.id)
    return Principal("operator", None, row.id)


@dataclass(frozen=True)
class Revoked:
    scope: Scope
    tenant: str | None


async def revoke(s: AsyncSession, token_id: int) -> Revoked:
    """Revoke a token, but never the last working operator token: that would lock the operator
    out of the API (a new one would then need the hub's CLI, on the hub's own machine)."""
    row = await s.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token {token_id}")
    if row.revoked_at is not None:
        raise AlreadyRevoked(f"token {token_id} is already revoked")
    revoke_it = update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
    if row.scope == "operator":
        # PostgreSQL: lock the working operator tokens, so that two revocations at once queue up
        # and the second sees the first's outcome (each alone would see the other still working).
        working = (ApiToken.scope == "operator", ApiToken.revoked_at.is_(None))
        await s.scalars(select(ApiToken.id).where(*working).with_for_update())
        # SQLite ignores FOR UPDATE; one statement that checks and writes is atomic there.
        other = aliased(ApiToken)
        revoke_it = revoke_it.where(
            exists().where(other.scope == "operator", other.revoked_at.is_(None), other.id != token_id)
        )
    done = await s.execute(revoke_it.values(revoked_at=utcnow()).execution_options(synchronize_session=False))
    if cast(CursorResult[Any], done).rowcount != 1:
        await s.refresh(row)
        if row.revoked_at is not None:
            raise AlreadyRevoked(f"token {token_id} is already revoked")
        raise LastOperatorToken(
            f"token {token_id} is the last operator token; create another before revoking it"
        )
    return Revoked("operator" if row.scope == "operator" else "tenant", row.tenant_code)
