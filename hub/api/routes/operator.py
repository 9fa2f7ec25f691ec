"""Operator actions: suspend and reinstate tenants, issue and revoke API tokens. Each goes
through hub.operator_actions, which audits and logs it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Response, status
from pydantic import BaseModel, ConfigDict, Field

from hub import operator_actions
from hub.api.deps import MAX_ID, Operator, SessionDep, SettingsDep
from hub.api.errors import problems
from hub.operator_actions import Actor
from hub.registry import TENANT_CODE_PATTERN
from hub.services import management

router = APIRouter(tags=["operator"])
CodePath = Annotated[str, Path(description="A tenant code", max_length=32)]


class TenantState(BaseModel):
    code: str
    active: bool
    connections_closed: int = 0


class OperatorTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["operator"]
    label: str = Field("", max_length=100)


class TenantTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["tenant"]
    tenant: str = Field(max_length=32, pattern=TENANT_CODE_PATTERN, description="The token's tenant")
    label: str = Field("", max_length=100)


TokenIn = Annotated[OperatorTokenIn | TenantTokenIn, Field(discriminator="scope")]


class TokenOut(BaseModel):
    id: int
    token: str = Field(description="Shown once; the hub keeps only its hash")
    scope: Literal["operator", "tenant"]
    tenant: str | None
    label: str


@router.post(
    "/tenants/{code}/suspend",
    summary="Suspend a tenant: broker access and API tokens",
    description="A tenant removed with `inbeeld tenant remove` is refused (409 `tenant_removed`).",
    responses=problems(401, 403, 404, 409, 422, 503),
)
async def suspend(code: CodePath, s: SessionDep, settings: SettingsDep, op: Operator) -> TenantState:
    async with management(settings) as mgmt:
        closed = await operator_actions.suspend_tenant(s, mgmt, settings, Actor.token(op.token_id), code)
    return TenantState(code=code, active=False, connections_closed=closed)


@router.post(
    "/tenants/{code}/reinstate",
    summary="Reinstate a suspended tenant",
    description="A tenant removed with `inbeeld tenant remove` is refused (409 `tenant_removed`).",
    responses=problems(401, 403, 404, 409, 422, 503),
)
async def reinstate(code: CodePath, s: SessionDep, settings: SettingsDep, op: Operator) -> TenantState:
    async with management(settings) as mgmt:
        await operator_actions.reinstate_tenant(s, mgmt, settings, Actor.token(op.token_id), code)
    return TenantState(code=code, active=True)


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Create an API token (shown once)",
    responses=problems(400, 401, 403, 404, 422),
)
async def create_token(body: Annotated[TokenIn, Body()], s: SessionDep, op: Operator) -> TokenOut:
    tenant = body.tenant if isinstance(body, TenantTokenIn) else None
    token_id, token = await operator_actions.create_token(
        s, Actor.token(op.token_id), body.scope, tenant, body.label
    )
    return TokenOut(id=token_id, token=token, scope=body.scope, tenant=tenant, label=body.label)


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API token",
    description="The last working operator token cannot be revoked (409 `last_operator_token`): "
    "create another first.",
    responses=problems(401, 403, 404, 409, 422),
)
async def revoke_token(
    token_id: Annotated[int, Path(ge=0, le=MAX_ID)], s: SessionDep, op: Operator
) -> Response:
    await operator_actions.revoke_token(s, Actor.token(op.token_id), token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
