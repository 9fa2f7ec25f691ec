"""API bearer tokens: random, shown once, stored as SHA-256 hashes, revocable, scoped.

A token is high-entropy (256 bits), so a fast hash is the right tool here (no password
stretching needed); comparison happens inside the database lookup by hash."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub import registry
from hub.store.models import ApiToken, utcnow
from schemas.errors import NotFound

Scope = Literal["operator", "tenant"]
PREFIX = "inb_"


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


async def revoke(s: AsyncSession, token_id: int) -> None:
    row = await s.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no token {token_id}")
    row.revoked_at = utcnow()
