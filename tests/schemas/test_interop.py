"""Interop: what schemas.sealed writes, an independent JOSE implementation (panva/jose on
Node.js) verifies and decrypts. CI runs `npm ci` in tools/jose-interop first."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
from pathlib import Path

import pytest
from joserfc.jwk import OKPKey

from schemas.errors import BadSignature
from schemas.sealed import EnvelopeBinding, open_, seal, sign, verify
from tests.utils.node import node_tool

TOOL = Path(__file__).parents[2] / "tools" / "jose-interop"
VECTOR = Path(__file__).parents[1] / "data" / "sealed_vector.json"


ENV = EnvelopeBinding(
    id="7a5d3c1e-2b4f-4a6d-8e0f-1a2b3c4d5e6f",
    type="nl.leerplicht.transfer.offered",
    source="urn:nld:cbs:GM0518:systeem:leerlingzaken",
    recipients=("GM0599", "GM0307"),
)


def key(crv: str) -> dict:
    return OKPKey.generate_key(crv).as_dict(private=True)


def public(jwk: dict) -> dict:
    return {k: jwk[k] for k in ("kty", "crv", "x")}


def node_open(tmp_path: Path, document: dict) -> subprocess.CompletedProcess[bytes]:
    node, _ = node_tool("jose-interop")
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document))
    return subprocess.run([node, str(TOOL / "open.mjs"), str(path)], capture_output=True, timeout=60)


@pytest.fixture
def parties():
    return key("Ed25519"), key("X25519"), key("X25519")


@pytest.mark.parametrize(
    "payload", [{"pupil": "Fictief Voorbeeld", "taal": "العربية ć"}, b"%PDF-1.7 \x00\xff"]
)
def test_jose_opens_what_we_seal(tmp_path, parties, payload):
    signer, me, other = parties
    sealed = seal(
        payload,
        envelope=ENV,
        recipients={"GM0599": [public(me)], "GM0307": [public(other)]},
        signer=signer,
    )
    result = node_open(
        tmp_path,
        {
            "sealed": sealed,
            "recipient_private_jwk": me,
            "sender_public_jwk": public(signer),
            "envelope": ENV.to_header(),
        },
    )
    assert result.returncode == 0, result.stderr.decode()
    expected = (
        payload
        if isinstance(payload, bytes)
        else json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    )
    assert result.stdout == expected


def test_jose_verifies_what_we_sign(tmp_path, parties):
    signer, me, _ = parties
    signed = sign({"template": "we-zijn-je-kwijt"}, envelope=ENV, signer=signer)
    result = node_open(
        tmp_path,
        {
            "sealed": signed,
            "recipient_private_jwk": me,
            "sender_public_jwk": public(signer),
            "envelope": ENV.to_header(),
        },
    )
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == {"template": "we-zijn-je-kwijt"}


def test_jose_opens_the_known_answer_vector(tmp_path):
    vector = json.loads(VECTOR.read_text())
    result = node_open(tmp_path, vector)
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(result.stdout) == vector["plaintext"]


@pytest.mark.parametrize("tamper", ["envelope", "signature", "other_recipient", "sender"])
def test_jose_refuses_what_it_should(tmp_path, parties, tamper):
    signer, me, other = parties
    sealed = seal({"a": 1}, envelope=ENV, recipients={"GM0599": [public(me)]}, signer=signer)
    doc = {
        "sealed": sealed,
        "recipient_private_jwk": me,
        "sender_public_jwk": public(signer),
        "envelope": ENV.to_header(),
    }
    if tamper == "envelope":
        doc["envelope"] = {**doc["envelope"], "recipients": ["GM0307"]}
    elif tamper == "signature":
        sig = sealed["signatures"][0]["signature"]
        sealed["signatures"][0]["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    elif tamper == "other_recipient":
        doc["recipient_private_jwk"] = other
    else:
        doc["sender_public_jwk"] = public(key("Ed25519"))
    result = node_open(tmp_path, doc)
    assert result.returncode == 1
    assert result.stderr.startswith(b"refused:")


# -- what jose writes, we read ------------------------------------------------------------------

BOUND = EnvelopeBinding(
    id=ENV.id,
    type=ENV.type,
    source=ENV.source,
    recipients=ENV.recipients,
    subject="tr-GM0518-0001",
    correlationid="flow-7",
)


def node_seal(tmp_path: Path, document: dict) -> dict:
    node, _ = node_tool("jose-interop")
    path = tmp_path / "seal-input.json"
    path.write_text(json.dumps(document))
    result = subprocess.run([node, str(TOOL / "seal.mjs"), str(path)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def _inner_jwe(jws: dict) -> dict:
    return json.loads(base64.urlsafe_b64decode(jws["payload"] + "=" * (-len(jws["payload"]) % 4)))


@pytest.mark.parametrize(
    ("forms", "recipients"),
    [
        ({}, 1),  # jose's own choice for one recipient: epk in the JWE protected header
        ({}, 2),
        ({"jws_form": "flattened"}, 1),
        ({"jwe_form": "flattened"}, 1),
        ({"jws_form": "flattened", "jwe_form": "flattened"}, 1),
    ],
)
def test_we_open_what_jose_seals(tmp_path, parties, forms, recipients):
    signer, me, other = parties
    keys = [public(me), public(other)][:recipients]
    plaintext = {"pupil": "Fictief Voorbeeld", "taal": "العربية ć"}
    jws = node_seal(
        tmp_path,
        {
            "plaintext": plaintext,
            "envelope": BOUND.to_header(),
            "sender_private_jwk": signer,
            "recipient_public_jwks": keys,
            **forms,
        },
    )
    verified = verify(jws, envelope=BOUND, sender_keys=[public(signer)])
    assert verified.kind == "sealed" and len(verified.recipient_kids) == recipients
    assert open_(jws, envelope=BOUND, sender_keys=[public(signer)], my_private_keys=[me]) == plaintext
    # the binding holds for jose's shape too: another subject is another envelope
    swapped = dataclasses.replace(BOUND, subject="tr-GM0518-9")
    with pytest.raises(BadSignature):
        verify(jws, envelope=swapped, sender_keys=[public(signer)])


def test_jose_single_recipient_shape_is_what_we_accept(tmp_path, parties):
    """The shape the regression is about, pinned: epk in the protected header, kid alone in the
    recipient entry (if jose changes its mind, the test above no longer covers it)."""
    signer, me, _ = parties
    jws = node_seal(
        tmp_path,
        {
            "plaintext": {"a": 1},
            "envelope": BOUND.to_header(),
            "sender_private_jwk": signer,
            "recipient_public_jwks": [public(me)],
        },
    )
    jwe = _inner_jwe(jws)
    protected = json.loads(base64.urlsafe_b64decode(jwe["protected"] + "=" * (-len(jwe["protected"]) % 4)))
    assert "epk" in protected
    assert set(jwe["recipients"][0]["header"]) == {"kid"}


def test_jose_opens_what_we_seal_with_subject_bound(tmp_path, parties):
    signer, me, _ = parties
    sealed_obj = seal({"a": 1}, envelope=BOUND, recipients={"GM0599": [public(me)]}, signer=signer)
    doc = {
        "sealed": sealed_obj,
        "recipient_private_jwk": me,
        "sender_public_jwk": public(signer),
        "envelope": BOUND.to_header(),
    }
    assert node_open(tmp_path, doc).returncode == 0
    doc["envelope"] = {**BOUND.to_header(), "subject": "tr-GM0518-9"}
    refused = node_open(tmp_path, doc)
    assert refused.returncode == 1 and b"bound to another envelope" in refused.stderr
