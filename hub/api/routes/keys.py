"""The key directory: tenants publish their public JWK Sets; anyone authenticated reads them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, Field

from hub import key_registration, keys
from hub.api.deps import CurrentPrincipal, CurrentTenant, DbDep, Operator, SessionDep, SettingsDep
from hub.api.errors import problems
from hub.registry import OIN_PATTERN, TEXT_PATTERN

router = APIRouter(tags=["keys"])


class JWKSet(BaseModel):
    """A JWK Set (RFC 7517 section 5) with the tenant it belongs to as an extra member."""

    tenant: str
    keys: list[dict[str, Any]] = Field(description="Public JWKs with `status`, `iat` and `exp`.")


_EXAMPLE = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "…",
            "kid": "<RFC 7638 thumbprint>",
            "use": "sig",
            "status": "primary",
        },
        {
            "kty": "OKP",
            "crv": "X25519",
            "x": "…",
            "kid": "<RFC 7638 thumbprint>",
            "use": "enc",
            "status": "primary",
        },
    ]
}


_PUT_KEYS = (
    "Registers the calling tenant's public key set. OKP Ed25519 keys for `sig`, X25519 for "
    "`enc`, `kid` = RFC 7638 thumbprint, no private members, exactly one primary per use. Keys "
    "left out are withdrawn. The first set is accepted as it is and the same set again changes "
    "nothing; any other change needs `proof`, a rotation proof signed by a currently published "
    "signing key (`schemas.key_proof`), else it is refused with 409 `key_replacement_refused` "
    "and the tenant is alerted (`hub.key_replacement_refused`). On a change every tenant "
    "receives `key.rotated`."
)


@router.put(
    "/keys",
    summary="Register or rotate your public keys",
    description=_PUT_KEYS,
    responses=problems(400, 401, 403, 409, 422, 503),
)
async def put_keys(
    body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
    db: DbDep,
    settings: SettingsDep,
    who: CurrentTenant,
) -> JWKSet:
    assert who.tenant is not None
    done = await key_registration.register_as_tenant(db, settings, who.tenant, body)
    return JWKSet(tenant=done.tenant, keys=done.keys)


@router.put(
    "/tenants/{code}/keys",
    summary="Replace a tenant's public keys (operator)",
    description="The operator replaces a tenant's key set without a rotation proof, e.g. after "
    "the tenant lost its keystore or a key leaked. Audited (`replace keys`); every tenant "
    "receives `key.rotated`.",
    responses=problems(400, 401, 403, 404, 422, 503),
)
async def replace_keys(
    code: Annotated[str, Path(pattern=TEXT_PATTERN)],
    body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
    db: DbDep,
    settings: SettingsDep,
    op: Operator,
) -> JWKSet:
    actor = f"api:operator:{op.token_id}"
    done = await key_registration.replace_as_operator(db, settings, code, body, actor=actor)
    return JWKSet(tenant=done.tenant, keys=done.keys)


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
