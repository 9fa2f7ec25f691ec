"""Dependencies shared by the routes: the store session and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from hub import auth
from hub.auth import Principal
from hub.config import Settings
from hub.store.db import Database

_bearer = HTTPBearer(auto_error=False, description="An operator or tenant token (inb_...).")
# The largest row id or offset the store's INTEGER columns hold: beyond it a 422, not a 500.
MAX_ID = 2**31 - 1


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    async with db.session() as s, s.begin():
        yield s


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DbDep = Annotated[Database, Depends(get_db)]


async def get_principal(
    s: SessionDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    principal = await auth.authenticate(s, creds.credentials) if creds else None
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


async def require_operator(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.is_operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint is for the hub operator")
    return principal


async def require_tenant(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if principal.is_operator:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint is for tenants")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
Operator = Annotated[Principal, Depends(require_operator)]
CurrentTenant = Annotated[Principal, Depends(require_tenant)]
