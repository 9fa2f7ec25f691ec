"""The hub's key directory (DESIGN section 6): tenants' public JWKs, and the router's check of
signed and sealed events against them.

A tenant registers its whole public JWK Set at once (what `Keystore.public_jwks()` returns):

    {"keys": [{"kty": "OKP", "crv": "Ed25519" | "X25519", "x": ..., "kid": <RFC 7638
               thumbprint>, "use": "sig" | "enc", "alg"?, "status"?: "primary" | "pending"
               | "retired", "iat"?: unix time, "exp"?: unix time}, ...]}

Exactly one primary key per use. A key missing from a later set is *withdrawn* (kept for
the record, never published again). Who may change a tenant's set (first registration, a
rotation proof by a current key, the operator) is `hub.key_registration`'s rule; `register`
here only applies a set. Published: every key not withdrawn and not expired,
primary, pending and retired alike — a retired key still verifies signatures and still
decrypts until it expires (Tink's rotation order; see `connectors.keystore`).

The router verifies without decrypting (`KeyCache.check`, which returns the
`hub.verified.VerifiedEvent` the workflows are given):
- `none` types: the payload is validated against its schema.
- `signed` types: the JWS by one of the sender's sig keys, bound to this envelope; then the
  signed JSON is validated like any payload. A sealed object there is `schema_invalid`.
- `sealed` types: the same JWS, and its payload must be the JWE (bound to the envelope too);
  a signed-only object is `schema_invalid` (the signature is fine, the protection is not:
  personal data would travel in clear). Every resolved recipient must find one of its
  published enc keys among the JWE's recipient entries, else `recipient_key_missing`.
- `data` missing or unsigned, signed by a key not the sender's, a signature that does not
  verify, or bound to another envelope (id, type, source, recipients, subject,
  correlationid) is `bad_signature`; a malformed JOSE object (structure, encoding, version,
  algorithm) is `crypto_invalid`; JSON inside nested too deep is `too_deep`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hub.store.models import Tenant, TenantKey, utcnow
from hub.verified import Sealed, VerifiedEvent
from schemas.envelope import CloudEvent
from schemas.errors import (
    BadSignature,
    ContractError,
    CryptoError,
    CryptoInvalid,
    NotFound,
    RoutingRefused,
    SchemaInvalid,
)
from schemas.events import EventSpec
from schemas.sealed import JWE_ALG, JWS_ALG, EnvelopeBinding, VerifiedObject, jwk_thumbprint, verify
from schemas.validation import validate_payload

__all__ = [
    "CACHE_TTL",
    "KeyCache",
    "KeyInvalid",
    "RecipientKeyMissing",
    "published",
    "register",
    "tenant_by_oin",
    "validate_jwks",
]

CURVES = {"sig": "Ed25519", "enc": "X25519"}
ALGS = {"sig": JWS_ALG, "enc": JWE_ALG}
STATUSES = ("primary", "pending", "retired")
WITHDRAWN = "withdrawn"
MAX_KEYS = 20  # a key.rotated lists at most 20 kids
CACHE_TTL = 30.0  # seconds a router trusts its copy of a tenant's keys
# Private members of any JWK type (RFC 7518 section 6): none may reach the hub.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class KeyInvalid(ContractError):
    reason = "key_invalid"


class RecipientKeyMissing(RoutingRefused):
    reason = "recipient_key_missing"


@dataclass(frozen=True)
class KeyRecord:
    kid: str
    use: str
    jwk: dict[str, Any]  # public members only
    status: str
    iat: int | None
    exp: int | None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:23] + "…"


def _validate_one(jwk: Any, field: str, now: int) -> KeyRecord:
    if not isinstance(jwk, Mapping):
        raise KeyInvalid(f"{field} must be a JWK (a JSON object)", field=field)
    private = [m for m in _PRIVATE_MEMBERS if m in jwk]
    if private:
        raise KeyInvalid(
            f"{field} contains the private member {private[0]!r}: publish only the public key; "
            "the private key never leaves the connector (replace it now, it has been exposed)",
            field=f"{field}.{private[0]}",
        )
    use = jwk.get("use")
    if use not in CURVES:
        raise KeyInvalid(f"{field}.use must be 'sig' or 'enc', not {_short(use)}", field=f"{field}.use")
    if jwk.get("kty") != "OKP":
        raise KeyInvalid(f"{field}.kty must be 'OKP', not {_short(jwk.get('kty'))}", field=f"{field}.kty")
    if jwk.get("crv") != CURVES[use]:
        raise KeyInvalid(
            f"{field}: a key for {use!r} must be OKP {CURVES[use]}, not {_short(jwk.get('crv'))}",
            field=f"{field}.crv",
        )
    if "alg" in jwk and jwk["alg"] != ALGS[use]:
        raise KeyInvalid(f"{field}.alg must be {ALGS[use]} for a {use} key", field=f"{field}.alg")
    x = jwk.get("x")
    public: dict[str, str] = {"kty": "OKP", "crv": CURVES[use], "x": x if isinstance(x, str) else ""}
    try:
        if not isinstance(x, str):
            raise ValueError
        OKPKey.import_key(dict(public))
    except (JoseError, ValueError, TypeError):
        raise KeyInvalid(f"{field}.x is not a valid {CURVES[use]} public key", field=f"{field}.x") from None
    thumbprint = jwk_thumbprint(public)
    if jwk.get("kid") != thumbprint:
        raise KeyInvalid(
            f"{field}.kid must be the RFC 7638 thumbprint of the key ({thumbprint})", field=f"{field}.kid"
        )
    status = jwk.get("status", "primary")
    if status not in STATUSES:
        raise KeyInvalid(f"{field}.status must be one of {', '.join(STATUSES)}", field=f"{field}.status")
    times: dict[str, int | None] = {}
    for member in ("iat", "exp"):
        value = jwk.get(member)
        if value is not None and (type(value) is not int or value < 0):
            raise KeyInvalid(f"{field}.{member} must be a Unix time (integer)", field=f"{field}.{member}")
        times[member] = value
    if times["exp"] is not None and times["exp"] <= now:
        raise KeyInvalid(f"{field} has already expired", field=f"{field}.exp")
    out = {**public, "kid": thumbprint, "use": use, "alg": ALGS[use]}
    return KeyRecord(thumbprint, use, out, status, times["iat"], times["exp"])


def validate_jwks(body: Any, now: datetime | None = None) -> list[KeyRecord]:
    """Check a JWK Set a tenant registers. Raises `KeyInvalid` naming the first problem."""
    t = int((now or datetime.now(UTC)).timestamp())
    keys = body.get("keys") if isinstance(body, Mapping) else None
    if not isinstance(keys, list):
        raise KeyInvalid("expected a JWK Set: an object with a 'keys' list", field="keys")
    if not 1 <= len(keys) <= MAX_KEYS:
        raise KeyInvalid(f"a JWK Set here has 1 to {MAX_KEYS} keys", field="keys")
    records = [_validate_one(jwk, f"keys.{i}", t) for i, jwk in enumerate(keys)]
    if len({r.kid for r in records}) != len(records):
        raise KeyInvalid("the same key appears twice", field="keys")
    for use in CURVES:
        primaries = sum(1 for r in records if r.use == use and r.status == "primary")
        if primaries != 1:
            raise KeyInvalid(f"exactly one primary {use} key is required (found {primaries})", field="keys")
    return records


def _ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _published_jwk(row: TenantKey) -> dict[str, Any]:
    out = {**row.jwk, "status": row.status, "iat": int(row.created_at.timestamp())}
    if row.expires_at is not None:
        out["exp"] = int(row.expires_at.timestamp())
    return out


def _live(row: TenantKey, now: datetime) -> bool:
    return row.status != WITHDRAWN and (row.expires_at is None or row.expires_at > now)


async def published(s: AsyncSession, tenant_code: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """The tenant's published public JWKs (sig first, then enc; primary first)."""
    if await s.get(Tenant, tenant_code) is None:
        raise NotFound(f"no tenant {tenant_code}")
    when = now or utcnow()
    rows = await s.scalars(select(TenantKey).where(TenantKey.tenant_code == tenant_code))
    live = [r for r in rows if _live(r, when)]
    order = {"primary": 0, "pending": 1, "retired": 2}
    live.sort(key=lambda r: (r.use != "sig", order.get(r.status, 3), r.kid))
    return [_published_jwk(r) for r in live]


async def register(
    s: AsyncSession, tenant_code: str, records: Sequence[KeyRecord], now: datetime | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Make `records` the tenant's key set. Returns (published JWKs, whether anything changed)."""
    when = now or utcnow()
    before = await published(s, tenant_code, when)
    rows = {r.kid: r for r in await s.scalars(select(TenantKey).where(TenantKey.tenant_code == tenant_code))}
    for rec in records:
        row = rows.get(rec.kid)
        if row is None:
            row = TenantKey(tenant_code=tenant_code, kid=rec.kid, use=rec.use, jwk=rec.jwk, created_at=when)
            s.add(row)
        if rec.iat is not None:
            row.created_at = _ts(rec.iat) or when
        row.status, row.expires_at, row.updated_at = rec.status, _ts(rec.exp), when
    wanted = {r.kid for r in records}
    for kid, row in rows.items():
        if kid not in wanted and row.status != WITHDRAWN:
            row.status, row.updated_at = WITHDRAWN, when
    await s.flush()
    after = await published(s, tenant_code, when)
    return after, after != before


async def tenant_by_oin(s: AsyncSession, oin: str) -> str:
    code = await s.scalar(select(Tenant.code).where(Tenant.oin == oin))
    if code is None:
        raise NotFound(f"no tenant with OIN {oin}")
    return code


async def _live_jwks(s: AsyncSession, tenant_code: str) -> list[dict[str, Any]]:
    now = utcnow()
    rows = await s.scalars(select(TenantKey).where(TenantKey.tenant_code == tenant_code))
    return [_published_jwk(r) for r in rows if _live(r, now)]


class KeyCache:
    """The router's copy of tenants' published keys: reloaded after `ttl` seconds, and at once
    when a message names a key the copy does not have (a rotation the copy predates). A
    withdrawn key is therefore trusted for at most `ttl` seconds after its withdrawal."""

    def __init__(self, ttl: float = CACHE_TTL, clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def invalidate(self, tenant_code: str | None = None) -> None:
        if tenant_code is None:
            self._entries.clear()
        else:
            self._entries.pop(tenant_code, None)

    async def keys(self, s: AsyncSession, tenant_code: str, *, refresh: bool = False) -> list[dict[str, Any]]:
        entry = self._entries.get(tenant_code)
        if refresh or entry is None or self._clock() - entry[0] > self.ttl:
            entry = (self._clock(), await _live_jwks(s, tenant_code))
            self._entries[tenant_code] = entry
        return entry[1]

    async def _kids(self, s: AsyncSession, code: str, use: str, *, refresh: bool = False) -> set[str]:
        return {k["kid"] for k in await self.keys(s, code, refresh=refresh) if k["use"] == use}

    async def _verify(self, s: AsyncSession, sender: str, event: CloudEvent) -> VerifiedObject:
        envelope = EnvelopeBinding.from_event(event)
        for refresh in (False, True):
            sig = [k for k in await self.keys(s, sender, refresh=refresh) if k["use"] == "sig"]
            try:
                return verify(event.data, envelope=envelope, sender_keys=sig)
            except BadSignature as exc:
                if refresh:
                    raise BadSignature(exc.message, field="data") from None
            except CryptoError as exc:  # malformed JOSE, not a wrong signature: crypto_invalid
                message = f"data is not a valid signed object: {exc.message}"
                raise CryptoInvalid(message, field="data") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def check(
        self, s: AsyncSession, sender: str, event: CloudEvent, spec: EventSpec, recipients: Sequence[str]
    ) -> VerifiedEvent:
        """Verify an event from `sender` to `recipients` (module docstring) and validate what
        the hub can read of it: the one check every routed event passes, once."""
        if spec.protection == "none":
            return VerifiedEvent(event, sender, validate_payload(event.type, event.data))
        verified = await self._verify(s, sender, event)
        if spec.protection == "signed":
            if verified.encrypted:
                raise SchemaInvalid(
                    f"{spec.short_type} is signed, not sealed: the hub must be able to check it",
                    field="data",
                )
            payload = validate_payload(event.type, verified.payload)
            return VerifiedEvent(event, sender, payload, verified.signer_kid)
        if not verified.encrypted:
            raise SchemaInvalid(
                f"{spec.short_type} carries personal data and must be sealed (encrypted), not only signed",
                field="data",
            )
        present = set(verified.recipient_kids)
        for code in recipients:
            if not await self._kids(s, code, "enc") & present and not (
                await self._kids(s, code, "enc", refresh=True) & present
            ):
                raise RecipientKeyMissing(
                    f"the data is not encrypted to any published key of {code}; "
                    "fetch its keys from the directory and seal again",
                    field="recipients",
                )
        return VerifiedEvent(event, sender, Sealed(verified.recipient_kids), verified.signer_kid)
