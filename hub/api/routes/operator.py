"""Operator actions: suspend and reinstate tenants, issue and revoke API tokens."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, Field, model_validator

from hub import auth, provisioning
from hub.api.deps import MAX_ID, Operator, SessionDep, SettingsDep
from hub.services import management

router = APIRouter(tags=["operator"])


class TenantState(BaseModel):
    code: str
    active: bool
    connections_closed: int = 0


class TokenIn(BaseModel):
    scope: Literal["operator", "tenant"]
    tenant: str | None = Field(None, max_length=32, description="The tenant of a tenant token")
    label: str = Field("", max_length=100)

    @model_validator(mode="after")
    def _tenant_matches_scope(self) -> Self:
        if (self.scope == "tenant") != (self.tenant is not None):
            raise ValueError("a tenant token needs `tenant`; an operator token must not have one")
        return self


class TokenOut(BaseModel):
    id: int
    token: str = Field(description="Shown once; the hub keeps only its hash")
    scope: str
    tenant: str | None
    label: str


@router.post("/tenants/{code}/suspend", summary="Suspend a tenant: broker access and API tokens")
async def suspend(code: str, s: SessionDep, settings: SettingsDep, _op: Operator) -> TenantState:
    async with management(settings) as mgmt:
        closed = await provisioning.suspend_tenant(s, mgmt, settings, code)
    return TenantState(code=code, active=False, connections_closed=closed)


@router.post("/tenants/{code}/reinstate", summary="Reinstate a suspended tenant")
async def reinstate(code: str, s: SessionDep, settings: SettingsDep, _op: Operator) -> TenantState:
    async with management(settings) as mgmt:
        await provisioning.reinstate_tenant(s, mgmt, settings, code)
    return TenantState(code=code, active=True)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, summary="Create an API token (shown once)")
async def create_token(body: TokenIn, s: SessionDep, _op: Operator) -> TokenOut:
    token_id, token = await auth.issue(s, body.scope, body.tenant, body.label)
    return TokenOut(id=token_id, token=token, scope=body.scope, tenant=body.tenant, label=body.label)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke an API token")
async def revoke_token(
    token_id: Annotated[int, Path(ge=0, le=MAX_ID)], s: SessionDep, _op: Operator
) -> Response:
    await auth.revoke(s, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
