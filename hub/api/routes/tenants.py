from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from hub import registry
from hub.api.deps import CurrentPrincipal, Operator, SessionDep

router = APIRouter(tags=["tenants"])


class TenantIn(BaseModel):
    code: str = Field(max_length=32, examples=["GM0518"])
    name: str = Field(max_length=200)
    kind: Literal["municipality", "regional_bureau", "association"]
    oin: str | None = Field(None, pattern=r"^\d{20}$")


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


class GroupIn(BaseModel):
    name: str = Field(max_length=63)
    members: list[str] = Field(max_length=1000)
    description: str = Field("", max_length=300)


def _out(t: registry.TenantInfo) -> TenantOut:
    return TenantOut(code=t.code, name=t.name, kind=t.kind, oin=t.oin, active=t.active)


@router.get("/tenants", summary="All tenants (operator)")
async def list_tenants(s: SessionDep, _op: Operator) -> list[TenantOut]:
    return [_out(t) for t in await registry.list_tenants(s)]


@router.post("/tenants", status_code=status.HTTP_201_CREATED, summary="Register a tenant")
async def add_tenant(body: TenantIn, s: SessionDep, _op: Operator) -> TenantOut:
    return _out(await registry.add_tenant(s, body.code, body.name, body.kind, body.oin))


@router.get("/tenants/me", summary="The calling tenant, with its inbox queue name")
async def me(s: SessionDep, who: CurrentPrincipal) -> TenantSelf | dict[str, str]:
    if who.tenant is None:
        return {"scope": "operator"}
    t = await registry.get_tenant(s, who.tenant)
    return TenantSelf(**_out(t).model_dump(), inbox=t.inbox)


@router.get("/groups", summary="Groups and their members")
async def list_groups(s: SessionDep, _who: CurrentPrincipal) -> dict[str, list[str]]:
    return await registry.list_groups(s)


@router.post("/groups", status_code=status.HTTP_201_CREATED, summary="Create a group (operator)")
async def add_group(body: GroupIn, s: SessionDep, _op: Operator) -> dict[str, list[str]]:
    return {body.name: await registry.add_group(s, body.name, body.members, body.description)}
