"""The rotation proof: how a tenant shows the hub that a new key set comes from the holder of
its current signing key (DESIGN section 6). Without one the hub refuses to replace a
tenant's published keys, so a copied API token alone cannot take over a tenant's keys.

Wire format, version 1: a JWS in compact serialization, sent beside the JWK Set it vouches
for (`PUT /keys` body member `proof`)::

    header  = {"alg": "Ed25519", "kid": <RFC 7638 thumbprint of the signing key>,
               "typ": "inbeeld-key-rotation+jws"}
    payload = {"v": 1, "iat": <Unix time>,
               "keys": [[kid, status, exp or null], ...]}     # the whole new set, sorted by kid

The hub accepts it when `kid` is one of the tenant's *currently published* signing keys (so
the connector signs with a key the hub already knows: its primary, or the one it had before
a promotion the hub has not seen yet), the signature verifies, `keys` is exactly the set
presented, and `iat` is within `MAX_AGE` seconds of the hub's clock (an old proof cannot
bring back an old set). The `typ` keeps a proof from passing for an event signature and
back: event signatures carry the critical `inb`/`ce` headers instead.

Errors: `ProofInvalid` (a `CryptoError`) naming what is wrong, never key material.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from schemas.errors import CryptoError
from schemas.sealed import JWS_ALG, jwk_thumbprint

__all__ = ["MAX_AGE", "PROOF_TYP", "ProofInvalid", "binding", "sign_rotation", "verify_rotation"]

PROOF_TYP = "inbeeld-key-rotation+jws"
VERSION = 1
MAX_AGE = 600  # seconds between signing and the hub's check, either way (clock skew)
_MAX_PROOF = 8_192  # 20 keys x ~70 bytes, base64url, plus header and signature
_REGISTRY = JWSRegistry(algorithms=[JWS_ALG])


class ProofInvalid(CryptoError):
    reason = "proof_invalid"


def binding(keys: Iterable[Mapping[str, Any]]) -> list[list[Any]]:
    """What a proof vouches for: each key's kid, status and expiry, sorted by kid."""
    return sorted([k["kid"], k.get("status", "primary"), k.get("exp")] for k in keys)


def _public(jwk: Mapping[str, Any]) -> OKPKey:
    return OKPKey.import_key({m: jwk[m] for m in ("kty", "crv", "x")})


def sign_rotation(jwks: Mapping[str, Any], signer: Mapping[str, Any], *, now: int | None = None) -> str:
    """A proof for the JWK Set `jwks`, signed with the private Ed25519 JWK `signer`."""
    try:
        key = OKPKey.import_key({m: signer[m] for m in ("kty", "crv", "x", "d")})
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProofInvalid("the rotation proof needs a private Ed25519 JWK") from None
    kid = jwk_thumbprint(key.as_dict(private=False))
    header = {"alg": JWS_ALG, "kid": kid, "typ": PROOF_TYP}
    payload = {"v": VERSION, "iat": int(time.time()) if now is None else now, "keys": binding(jwks["keys"])}
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return jws.serialize_compact(header, body, key, registry=_REGISTRY)


def verify_rotation(
    proof: Any,
    keys: Iterable[Mapping[str, Any]],
    trusted: Sequence[Mapping[str, Any]],
    *,
    now: int | None = None,
) -> str:
    """Check `proof` for the key set `keys` against the tenant's current signing keys
    `trusted` (public JWKs). Returns the kid that signed it; raises `ProofInvalid`."""
    if not isinstance(proof, str) or not 0 < len(proof) <= _MAX_PROOF:
        raise ProofInvalid("proof must be a compact JWS (a string)")
    try:
        header = jws.extract_compact(proof.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError, RecursionError):  # a nested header is not a JWS
        raise ProofInvalid("proof is not a compact JWS") from None
    if header.get("typ") != PROOF_TYP or header.get("alg") != JWS_ALG or "crit" in header:
        raise ProofInvalid(f"proof must be a JWS with typ {PROOF_TYP!r} and alg {JWS_ALG!r}")
    by_kid = {k["kid"]: k for k in trusted if k.get("use") == "sig"}
    signer = by_kid.get(str(header.get("kid")))
    if signer is None:
        raise ProofInvalid("proof is not signed by any of the tenant's current signing keys")
    try:
        verified = jws.deserialize_compact(proof, _public(signer), registry=_REGISTRY)
        payload = json.loads(verified.payload)
    except (JoseError, ValueError, UnicodeError, RecursionError):
        raise ProofInvalid("the proof's signature does not verify") from None
    if not isinstance(payload, dict) or payload.get("v") != VERSION:
        raise ProofInvalid(f"proof payload must be version {VERSION}")
    if payload.get("keys") != binding(keys):
        raise ProofInvalid("proof vouches for another key set than the one presented")
    iat, t = payload.get("iat"), int(time.time()) if now is None else now
    if type(iat) is not int or abs(t - iat) > MAX_AGE:
        raise ProofInvalid(f"proof is older than {MAX_AGE} seconds (or from the future): sign it again")
    return str(signer["kid"])
