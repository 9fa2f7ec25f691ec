"""Template subscriptions and the hub's template catalogue (metadata; see hub.workflows.templates)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel

from hub.api.deps import CurrentPrincipal, CurrentTenant, SessionDep
from hub.api.errors import problems
from hub.registry import TENANT_CODE_PATTERN, TEXT_PATTERN
from hub.workflows import templates as service

router = APIRouter(tags=["templates"])

PublisherPath = Path(
    description="A publisher's tenant code (e.g. `ingrado`), or `*` for every publisher",
    pattern=r"^(\*|GM[0-9]{4}|[a-z][a-z0-9-]{1,31})$",
)


class Subscriptions(BaseModel):
    tenant: str
    publishers: list[str]  # tenant codes; `*` follows every publisher


class Subscribers(BaseModel):
    publisher: str
    subscribers: list[str]


class CatalogueEntry(BaseModel):
    template_id: str
    version: str
    ref: str  # template_id@version
    publisher: str
    title: str
    languages: list[str]
    digest: str  # sha256 of the signed bundle's canonical JSON
    published_at: datetime
    withdrawn_at: datetime | None
    withdraw_reason: str | None


def _me(who: CurrentPrincipal, tenant: str | None) -> str:
    if who.tenant is not None:
        if tenant is not None and tenant != who.tenant:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such subscriptions")
        return who.tenant
    if tenant is None:  # the operator follows no one itself
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "the operator has no subscriptions; name a tenant: ?tenant="
        )
    return tenant


TenantQuery = Query(
    None, max_length=32, pattern=TENANT_CODE_PATTERN, description="The operator names a tenant"
)


@router.get(
    "/subscriptions",
    summary="The publishers you follow (operator: ?tenant=)",
    responses=problems(401, 404, 422),
)
async def list_subscriptions(
    s: SessionDep, who: CurrentPrincipal, tenant: str | None = TenantQuery
) -> Subscriptions:
    code = _me(who, tenant)
    return Subscriptions(tenant=code, publishers=await service.subscriptions_of(s, code))


@router.put(
    "/subscriptions/{publisher}",
    summary="Follow a publisher's templates (`*`: every publisher)",
    description="Idempotent. From now on the hub delivers the publisher's `template.published` "
    "and `template.withdrawn` to you. A publisher that is no tenant is 404; yourself, 403.",
    responses=problems(401, 403, 404, 422),
)
async def put_subscription(
    s: SessionDep, who: CurrentTenant, publisher: str = PublisherPath
) -> Subscriptions:
    assert who.tenant is not None
    await service.subscribe(s, who.tenant, publisher)
    return Subscriptions(tenant=who.tenant, publishers=await service.subscriptions_of(s, who.tenant))


@router.delete(
    "/subscriptions/{publisher}",
    summary="Stop following a publisher (or `*`)",
    responses=problems(401, 403, 404, 422),
)
async def delete_subscription(
    s: SessionDep, who: CurrentTenant, publisher: str = PublisherPath
) -> Subscriptions:
    assert who.tenant is not None
    if not await service.unsubscribe(s, who.tenant, publisher):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you do not follow {publisher}")
    return Subscriptions(tenant=who.tenant, publishers=await service.subscriptions_of(s, who.tenant))


@router.get(
    "/subscribers",
    summary="Who receives your templates (group:subscribers, expanded)",
    responses=problems(401, 403),
)
async def list_subscribers(s: SessionDep, who: CurrentTenant) -> Subscribers:
    assert who.tenant is not None
    return Subscribers(publisher=who.tenant, subscribers=await service.subscribers_of(s, who.tenant))


@router.get(
    "/templates",
    summary="The template catalogue: published versions, withdrawn ones marked",
    responses=problems(401, 422),
)
async def list_templates(
    s: SessionDep,
    _who: CurrentPrincipal,
    publisher: str | None = Query(None, max_length=32, pattern=TEXT_PATTERN),
    include_withdrawn: bool = True,
) -> list[CatalogueEntry]:
    rows = await service.catalogue(s, publisher=publisher, include_withdrawn=include_withdrawn)
    return [
        CatalogueEntry(
            template_id=r.template_id,
            version=r.version,
            ref=f"{r.template_id}@{r.version}",
            publisher=r.publisher,
            title=r.title,
            languages=list(r.languages),
            digest=r.digest,
            published_at=r.published_at,
            withdrawn_at=r.withdrawn_at,
            withdraw_reason=r.withdraw_reason,
        )
        for r in rows
    ]
