"""The key directory: tenants publish their public JWK Sets; anyone authenticated reads them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field

from hub import audit, keys, publisher, registry
from hub.api.deps import CurrentPrincipal, CurrentTenant, DbDep, SessionDep, SettingsDep
from hub.api.errors import problems
from hub.registry import OIN_PATTERN, TEXT_PATTERN
from schemas.events import KeyRotated

router = APIRouter(tags=["keys"])
log = structlog.get_logger("inbeeld.keys")


class JWKSet(BaseModel):
    """A JWK Set (RFC 7517 section 5) with the tenant it belongs to as an extra member."""

    tenant: str
    keys: list[dict[str, Any]] = Field(description="Public JWKs with `status`, `iat` and `exp`.")


_EXAMPLE = {
    "keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": "…", "kid": "<RFC 7638 thumbprint>", "use": "sig",
         "status": "primary"},
        {"kty": "OKP", "crv": "X25519", "x": "…", "kid": "<RFC 7638 thumbprint>", "use": "enc",
         "status": "primary"},
    ]
}


@router.put(
    "/keys",
    summary="Register or rotate your public keys",
    description="Replaces the calling tenant's published key set. OKP Ed25519 keys for `sig`, "
    "X25519 for `enc`, `kid` = RFC 7638 thumbprint, no private members, exactly one primary "
    "per use. Keys left out are withdrawn. On a change every tenant receives `key.rotated`.",
    responses=problems(400, 401, 403, 422, 503),
)
async def put_keys(
    body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
    db: DbDep,
    settings: SettingsDep,
    who: CurrentTenant,
) -> JWKSet:
    assert who.tenant is not None
    records = keys.validate_jwks(body)  # refuse before touching the broker or the store
    async with publisher.HubPublisher.open(settings) as pub:
        events = []
        async with db.session() as s, s.begin():
            jwks, changed = await keys.register(s, who.tenant, records)
            if changed:
                tenants = [t.code for t in await registry.list_tenants(s) if t.active]
                data = KeyRotated(tenant=who.tenant, kids=[k["kid"] for k in jwks]).model_dump()
                about = f"{who.tenant}:{uuid.uuid4()}"  # every change is news, even back to an old set
                for i in range(0, len(tenants), publisher.MAX_RECIPIENTS):
                    chunk = tenants[i : i + publisher.MAX_RECIPIENTS]
                    event = publisher.hub_event(settings, "key.rotated", data, chunk, about=f"{about}:{i}")
                    events.append((event, await publisher.record(s, event)))
                await audit.append(
                    s,
                    activity="register keys",
                    actor=f"api:{who.tenant}",
                    outcome="registered",
                    sender=who.tenant,
                    recipients=tenants,
                    subject_ref=events[0][0].id,
                )
        for event, seqs in events:
            await pub.deliver(event, seqs)
    log.info("keys.registered", tenant=who.tenant, kids=[k["kid"] for k in jwks], changed=changed)
    return JWKSet(tenant=who.tenant, keys=jwks)


@router.get(
    "/tenants/{code}/keys", summary="A tenant's public keys (JWK Set)", responses=problems(401, 404, 422)
)
async def get_keys(
    code: Annotated[str, Path(pattern=TEXT_PATTERN)], s: SessionDep, _who: CurrentPrincipal
) -> JWKSet:
    return JWKSet(tenant=code, keys=await keys.published(s, code))


@router.get(
    "/tenants/by-oin/{oin}/keys",
    summary="The public keys of the tenant with this OIN",
    responses=problems(401, 404, 422),
)
async def get_keys_by_oin(
    oin: Annotated[str, Path(pattern=OIN_PATTERN)], s: SessionDep, _who: CurrentPrincipal
) -> JWKSet:
    code = await keys.tenant_by_oin(s, oin)
    return JWKSet(tenant=code, keys=await keys.published(s, code))
