"""The rotation proof (schemas.key_proof): what it vouches for, and every way it is refused."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import OKPKey

from connectors.keystore import Keystore
from schemas import sealed
from schemas.key_proof import MAX_AGE, PROOF_TYP, ProofInvalid, binding, sign_rotation, verify_rotation

NOW = 1_800_000_000


@pytest.fixture
def ks(tmp_path: Path) -> Keystore:
    return Keystore.create(tmp_path / "ks.json", kek=os.urandom(32))


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def test_a_proof_verifies_for_its_set_by_a_current_key(ks: Keystore) -> None:
    jwks = ks.public_jwks()
    proof = sign_rotation(jwks, ks.signing_key(), now=NOW)
    assert verify_rotation(proof, jwks["keys"], jwks["keys"], now=NOW + MAX_AGE) == ks.primary_kid("sig")
    header = jws.extract_compact(proof.encode()).headers()
    assert header == {"alg": "Ed25519", "kid": ks.primary_kid("sig"), "typ": PROOF_TYP}
    assert ks.signing_key()["d"] not in proof


def test_the_binding_is_kid_status_and_expiry_sorted(ks: Keystore) -> None:
    ks.add_key("enc")
    keys = ks.public_jwks()["keys"]
    assert binding(keys) == sorted([k["kid"], k["status"], k.get("exp")] for k in keys)
    assert binding([{"kid": "b"}, {"kid": "a", "status": "pending", "exp": 5}]) == [
        ["a", "pending", 5],
        ["b", "primary", None],
    ]


def test_refusals_name_the_problem(ks: Keystore, tmp_path: Path) -> None:
    jwks = ks.public_jwks()
    trusted = jwks["keys"]
    other = Keystore.create(tmp_path / "other.json", kek=os.urandom(32))
    good = sign_rotation(jwks, ks.signing_key(), now=NOW)
    ks.add_key("enc")
    grown = ks.public_jwks()
    key = OKPKey.import_key(dict(ks.signing_key()))
    untyped = jws.serialize_compact({"alg": "Ed25519", "kid": ks.primary_kid("sig")}, b"{}", key, ["Ed25519"])
    event_signature = sealed.sign(
        {"a": 1}, envelope=sealed.EnvelopeBinding("i", "t", "s", ("GM0599",)), signer=ks.signing_key()
    )
    cases: list[tuple[Any, Any, str]] = [
        (None, jwks["keys"], "compact JWS"),
        ("x" * 9000, jwks["keys"], "compact JWS"),
        ("a.b.c", jwks["keys"], "not a compact JWS"),
        (_b64([[]]) + ".e30.AA", jwks["keys"], "not a compact JWS"),
        (base64.urlsafe_b64encode(b"[" * 5000).decode() + ".e30.AA", jwks["keys"], "compact JWS"),
        (_b64({"alg": "Ed25519"}) + ".e30.AA", jwks["keys"], "typ"),
        (untyped, jwks["keys"], "typ"),
        (json.dumps(event_signature), jwks["keys"], "not a compact JWS"),
        (sign_rotation(jwks, other.signing_key(), now=NOW), jwks["keys"], "current signing keys"),
        (good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"), jwks["keys"], "does not verify"),
        (good, grown["keys"], "another key set"),
        (sign_rotation(jwks, ks.signing_key(), now=NOW - MAX_AGE - 1), jwks["keys"], "older than"),
        (sign_rotation(jwks, ks.signing_key(), now=NOW + MAX_AGE + 1), jwks["keys"], "older than"),
    ]
    for proof, presented, words in cases:
        with pytest.raises(ProofInvalid) as caught:
            verify_rotation(proof, presented, trusted, now=NOW)
        assert words in caught.value.message, (words, caught.value.message)
        assert caught.value.reason == "proof_invalid"


def test_an_enc_key_with_the_signers_kid_is_not_trusted(ks: Keystore) -> None:
    jwks = ks.public_jwks()
    proof = sign_rotation(jwks, ks.signing_key(), now=NOW)
    as_enc = [{**k, "use": "enc"} for k in jwks["keys"]]
    with pytest.raises(ProofInvalid, match="current signing keys"):
        verify_rotation(proof, jwks["keys"], as_enc, now=NOW)


def test_signing_needs_a_private_ed25519_key(ks: Keystore) -> None:
    with pytest.raises(ProofInvalid, match="private Ed25519"):
        sign_rotation(ks.public_jwks(), ks.public_jwks()["keys"][0])
