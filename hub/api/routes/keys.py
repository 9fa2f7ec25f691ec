"""The key directory: tenants publish their public JWK Sets; anyone authenticated reads them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from hub import key_registration, keys
from hub.api.deps import CurrentPrincipal, CurrentTenant, DbDep, Operator, SessionDep, SettingsDep

router = APIRouter(tags=["keys"])


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
    responses={409: {"description": "new keys without a valid rotation proof (key_replacement_refused)"}},
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
)
async def replace_keys(
    code: str,
    body: Annotated[dict[str, Any], Body(examples=[_EXAMPLE])],
    db: DbDep,
    settings: SettingsDep,
    op: Operator,
) -> JWKSet:
    actor = f"api:operator:{op.token_id}"
    done = await key_registration.replace_as_operator(db, settings, code, body, actor=actor)
    return JWKSet(tenant=done.tenant, keys=done.keys)


@router.get("/tenants/{code}/keys", summary="A tenant's public keys (JWK Set)")
async def get_keys(code: str, s: SessionDep, _who: CurrentPrincipal) -> JWKSet:
    return JWKSet(tenant=code, keys=await keys.published(s, code))


@router.get("/tenants/by-oin/{oin}/keys", summary="The public keys of the tenant with this OIN")
async def get_keys_by_oin(oin: str, s: SessionDep, _who: CurrentPrincipal) -> JWKSet:
    code = await keys.tenant_by_oin(s, oin)
    return JWKSet(tenant=code, keys=await keys.published(s, code))
