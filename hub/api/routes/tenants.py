from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from hub import operator_actions, registry
from hub.api.deps import CurrentPrincipal, Operator, SessionDep
from hub.api.errors import problems
from hub.operator_actions import Actor
from hub.registry import GROUP_NAME_PATTERN, NAME_PATTERN, OIN_PATTERN, TENANT_CODE_PATTERN, TEXT_PATTERN
from hub.tenants import TenantInfo, TenantKind

router = APIRouter(tags=["tenants"])


class TenantIn(BaseModel):
    code: str = Field(max_length=32, pattern=TENANT_CODE_PATTERN, examples=["GM0518"])
    name: str = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)
    kind: TenantKind
    oin: str | None = Field(None, pattern=OIN_PATTERN)


class TenantOut(BaseModel):
    code: str
    name: str
    kind: str
    oin: str | None
    active: bool


class TenantSelf(TenantOut):
    inbox: str | None = Field(
        description="The broker queue this tenant consumes (its connector's broker.inbox); "
        "unguessable, shown to the tenant itself only. Null until the tenant is provisioned.",
        examples=["inbeeld.inbox.GM0518.q3Yx0cJ6y9mG0bQ1aW8tZw"],
    )
    broker_user: str | None = Field(
        None,
        description="The broker user the tenant's connector logs in as (its broker.username), so "
        "`inbeeld-connector check` can tell a configuration that mixes two tenants. Null until "
        "the tenant is provisioned.",
        examples=["inbeeld.GM0518"],
    )


class OperatorOut(BaseModel):
    scope: Literal["operator"]


class GroupIn(BaseModel):
    name: str = Field(max_length=63, pattern=GROUP_NAME_PATTERN)
    members: list[Annotated[str, Field(max_length=32, pattern=TENANT_CODE_PATTERN)]] = Field(max_length=1000)
    description: str = Field("", max_length=300, pattern=TEXT_PATTERN)


def _out(t: TenantInfo) -> TenantOut:
    return TenantOut(code=t.code, name=t.name, kind=t.kind, oin=t.oin, active=t.active)


@router.get("/tenants", summary="All tenants (operator)", responses=problems(401, 403))
async def list_tenants(s: SessionDep, _op: Operator) -> list[TenantOut]:
    return [_out(t) for t in await registry.list_tenants(s)]


@router.post(
    "/tenants",
    status_code=status.HTTP_201_CREATED,
    summary="Register a tenant",
    responses=problems(400, 401, 403, 409, 422),
)
async def add_tenant(body: TenantIn, s: SessionDep, op: Operator) -> TenantOut:
    actor = Actor.token(op.token_id)
    return _out(await operator_actions.add_tenant(s, actor, body.code, body.name, body.kind, body.oin))


@router.get(
    "/tenants/me",
    summary="The calling tenant, with its inbox queue name (the operator: its scope)",
    responses=problems(401),
)
async def me(s: SessionDep, who: CurrentPrincipal) -> TenantSelf | OperatorOut:
    if who.tenant is None:
        return OperatorOut(scope="operator")
    t = await registry.get_tenant(s, who.tenant)
    return TenantSelf(**_out(t).model_dump(), inbox=t.inbox, broker_user=t.broker_username)


@router.get("/groups", summary="Groups and their members", responses=problems(401))
async def list_groups(s: SessionDep, _who: CurrentPrincipal) -> dict[str, list[str]]:
    return await registry.list_groups(s)


@router.post(
    "/groups",
    status_code=status.HTTP_201_CREATED,
    summary="Create a group (operator)",
    description="Every member must be a registered tenant (404 `unknown_tenant` names the others).",
    responses=problems(400, 401, 403, 404, 409, 422),
)
async def add_group(body: GroupIn, s: SessionDep, op: Operator) -> dict[str, list[str]]:
    actor = Actor.token(op.token_id)
    return {body.name: await operator_actions.add_group(s, actor, body.name, body.members, body.description)}
