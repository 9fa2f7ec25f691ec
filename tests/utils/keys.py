"""Keys for tests on the session's long-lived hub: a test that makes a fresh keystore for a
seed tenant installs its keys the way the operator replaces a lost keystore (the tenant's
own `PUT /keys` refuses a replacement without a rotation proof by the registered keys)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import update

from hub import key_registration
from hub.store.models import TenantKey, utcnow
from tests.utils.hubs import RunningHub


async def install_keys(hub: RunningHub, code: str, jwks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Make `jwks` the tenant's published keys as the operator does; returns what is published."""
    done = await key_registration.replace_as_operator(hub.db, hub.settings, code, dict(jwks), actor="test")
    return done.keys


async def forget_keys(hub: RunningHub, code: str) -> None:
    """Withdraw every key of `code` in the store: the tenant is back to "no keys yet"."""
    async with hub.db.session() as s, s.begin():
        withdraw = update(TenantKey).where(TenantKey.tenant_code == code)
        await s.execute(withdraw.values(status="withdrawn", updated_at=utcnow()))
    hub.router.keys.invalidate(code)
