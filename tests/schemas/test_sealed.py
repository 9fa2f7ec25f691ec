"""The sealed wire format: round trips, tamper detection, binding, rotation, known answer."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from joserfc.jwk import OKPKey

from connectors.keystore import Keystore
from schemas import sealed
from schemas.envelope import CloudEvent
from schemas.errors import BadSignature, CryptoError, CryptoInvalid, TooDeep
from schemas.sealed import EnvelopeBinding, jwk_thumbprint, open_, seal, sign, verify

VECTOR = Path(__file__).parents[1] / "data" / "sealed_vector.json"
SECRET = "Jan-Pieter de Vries, BSN 111222333"  # fictional; must never leak into errors
REFUSED = (BadSignature, CryptoError)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def okp(crv: str, seed: str | None = None) -> dict:
    """A private OKP JWK; fixed when `seed` is given (for the known-answer vector)."""
    if seed is None:
        return OKPKey.generate_key(crv).as_dict(private=True)
    raw = hashlib.sha256(seed.encode()).digest()
    cls = {"X25519": X25519PrivateKey, "Ed25519": Ed25519PrivateKey}[crv]
    return OKPKey.import_key(cls.from_private_bytes(raw)).as_dict(private=True)


def public(jwk: dict) -> dict:
    return {k: jwk[k] for k in ("kty", "crv", "x")}


class Party:
    def __init__(self, code: str, seed: str | None = None) -> None:
        self.code = code
        self.enc = okp("X25519", seed and seed + ":enc")
        self.sig = okp("Ed25519", seed and seed + ":sig")


def binding(**changes: object) -> EnvelopeBinding:
    fields: dict = {
        "id": "3f1c2b9e-8d4a-4c6e-9b1a-2f0e7d6c5b4a",
        "type": "nl.leerplicht.transfer.offered",
        "source": "urn:nld:cbs:GM0518:systeem:leerlingzaken",
        "recipients": ("GM0599",),
    }
    fields.update(changes)
    return EnvelopeBinding(**fields)


@pytest.fixture
def den_haag() -> Party:
    return Party("GM0518")


@pytest.fixture
def rotterdam() -> Party:
    return Party("GM0599")


@pytest.fixture
def amersfoort() -> Party:
    return Party("GM0307")


def seal_to(sender: Party, *recipients: Party, payload=None, env=None) -> dict:
    return seal(
        {"note": SECRET} if payload is None else payload,
        envelope=env or binding(),
        recipients={r.code: [public(r.enc)] for r in recipients},
        signer=sender.sig,
    )


def open_as(obj: dict, sender: Party, me: Party, env=None):
    return open_(obj, envelope=env or binding(), sender_keys=[public(sender.sig)], my_private_keys=[me.enc])


# --- round trips ------------------------------------------------------------------------------


def test_round_trip_to_one_recipient(den_haag, rotterdam):
    obj = seal_to(den_haag, rotterdam)
    assert open_as(obj, den_haag, rotterdam) == {"note": SECRET}
    assert SECRET not in json.dumps(obj)


def test_bytes_payload_round_trip(den_haag, rotterdam):
    obj = seal_to(den_haag, rotterdam, payload=b"\x00\xffraw pdf bytes")
    assert open_as(obj, den_haag, rotterdam) == b"\x00\xffraw pdf bytes"


def test_large_payload_round_trip(den_haag, rotterdam):
    blob = os.urandom(300 * 1024)  # above joserfc's default 64 KiB ciphertext limit
    assert open_as(seal_to(den_haag, rotterdam, payload=blob), den_haag, rotterdam) == blob


def test_round_trip_to_several_recipients(den_haag, rotterdam, amersfoort):
    env = binding(recipients=("GM0599", "GM0307"))
    obj = seal_to(den_haag, rotterdam, amersfoort, env=env)
    for me in (rotterdam, amersfoort):
        assert open_as(obj, den_haag, me, env=env) == {"note": SECRET}
    verified = verify(obj, envelope=env, sender_keys=[public(den_haag.sig)])
    assert verified.encrypted and verified.kind == "sealed"
    assert set(verified.recipient_kids) == {
        jwk_thumbprint(rotterdam.enc),
        jwk_thumbprint(amersfoort.enc),
    }
    assert verified.signer_kid == jwk_thumbprint(den_haag.sig)


def test_one_entry_per_recipient_key(den_haag, rotterdam):
    second = okp("X25519")
    obj = seal(
        {"a": 1},
        envelope=binding(),
        recipients={"GM0599": [public(rotterdam.enc), public(second)]},
        signer=den_haag.sig,
    )
    jwe = json.loads(unb64(obj["payload"]))
    assert [r["header"]["kid"] for r in jwe["recipients"]] == [
        jwk_thumbprint(rotterdam.enc),
        jwk_thumbprint(second),
    ]
    assert open_(obj, envelope=binding(), sender_keys=[public(den_haag.sig)], my_private_keys=[second]) == {
        "a": 1
    }


def test_signed_only(den_haag, rotterdam):
    obj = sign({"template": "we-zijn-je-kwijt"}, envelope=binding(), signer=den_haag.sig)
    verified = verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)])
    assert verified.kind == "signed" and not verified.encrypted
    assert verified.payload == {"template": "we-zijn-je-kwijt"}
    assert open_as(obj, den_haag, rotterdam) == {"template": "we-zijn-je-kwijt"}


def test_binding_from_cloud_event():
    event = CloudEvent(
        source="urn:nld:cbs:GM0518:systeem:leerlingzaken",
        type="nl.leerplicht.transfer.offered",
        recipients=["GM0599"],
    )
    b = EnvelopeBinding.from_event(event)
    assert b == EnvelopeBinding(event.id, event.type, event.source, ("GM0599",))


# --- refusals ---------------------------------------------------------------------------------


def test_non_recipient_cannot_decrypt(den_haag, rotterdam, amersfoort):
    obj = seal_to(den_haag, rotterdam)
    verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)])  # the signature is fine
    with pytest.raises(CryptoError) as exc:
        open_as(obj, den_haag, amersfoort)
    assert SECRET not in str(exc.value)


def test_non_recipient_claiming_a_recipient_kid_cannot_decrypt(den_haag, rotterdam, amersfoort):
    obj = seal_to(den_haag, rotterdam)
    jwe = json.loads(unb64(obj["payload"]))
    jwe["recipients"][0]["header"]["kid"] = jwk_thumbprint(amersfoort.enc)
    forged = sealed._signed(sealed._dumps(jwe), sealed.CTY_JWE, binding(), den_haag.sig)
    with pytest.raises(CryptoError):
        open_as(forged, den_haag, amersfoort)


def test_signature_by_a_key_not_in_sender_keys_is_refused(den_haag, rotterdam):
    intruder = Party("GM0518")  # claims to be Den Haag, with its own valid keys
    obj = seal_to(intruder, rotterdam)
    with pytest.raises(BadSignature):
        verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)])
    # also when the intruder writes Den Haag's kid into its header
    obj = seal_to(intruder, rotterdam)
    header = json.loads(unb64(obj["signatures"][0]["protected"]))
    header["kid"] = jwk_thumbprint(den_haag.sig)
    obj["signatures"][0]["protected"] = b64(json.dumps(header).encode())
    with pytest.raises(BadSignature):
        verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)])


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "6b0e1f3a-0000-4000-8000-000000000000"},
        {"type": "nl.leerplicht.transfer.completed"},
        {"source": "urn:nld:cbs:GM0307:systeem:leerlingzaken"},
        {"recipients": ("GM0307",)},
        {"recipients": ("GM0599", "GM0307")},
    ],
)
def test_readdressing_is_refused(den_haag, rotterdam, changes):
    obj = seal_to(den_haag, rotterdam)
    with pytest.raises(BadSignature):
        verify(obj, envelope=binding(**changes), sender_keys=[public(den_haag.sig)])
    with pytest.raises(BadSignature):
        open_as(obj, den_haag, rotterdam, env=binding(**changes))


def test_recipient_cannot_forward_ciphertext_under_a_new_envelope(den_haag, rotterdam, amersfoort):
    """Rotterdam re-signs Den Haag's JWE (to Rotterdam and Amersfoort) as its own event to
    Amersfoort: the JWE's own binding still names Den Haag's envelope, so it is refused."""
    env = binding(recipients=("GM0599", "GM0307"))
    obj = seal_to(den_haag, rotterdam, amersfoort, env=env)
    jwe = verify(obj, envelope=env, sender_keys=[public(den_haag.sig)]).payload
    new_env = binding(
        id="9d0c7e2a-1111-4111-8111-111111111111",
        source="urn:nld:cbs:GM0599:systeem:leerlingzaken",
        recipients=("GM0307",),
    )
    forwarded = sealed._signed(sealed._dumps(jwe), sealed.CTY_JWE, new_env, rotterdam.sig)
    with pytest.raises(BadSignature):
        open_as(forwarded, rotterdam, amersfoort, env=new_env)


def _mutations(value, path=()):
    """Every single-byte flip of every string (keys and values) in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            for i, mutated in _flips(key):
                if mutated not in value:
                    yield (*path, "key", key, i), _replace_key(value, key, mutated)
            for where, sub in _mutations(item, (*path, key)):
                yield where, {**value, key: sub}
    elif isinstance(value, list):
        for n, item in enumerate(value):
            for where, sub in _mutations(item, (*path, n)):
                yield where, [*value[:n], sub, *value[n + 1 :]]
    elif isinstance(value, str):
        for i, mutated in _flips(value):
            yield (*path, i), mutated


def _flips(text: str):
    raw = text.encode()
    for i in range(len(raw)):
        for mask in (0x01, 0x20):
            flipped = bytearray(raw)
            flipped[i] ^= mask
            yield i, flipped.decode("latin-1")


def _replace_key(d: dict, old: str, new: str) -> dict:
    return {new if k == old else k: v for k, v in d.items()}


def test_every_byte_flip_is_detected(den_haag, rotterdam):
    obj = seal_to(den_haag, rotterdam)
    positions = 0
    for where, mutated in _mutations(obj):
        positions += 1
        with pytest.raises(REFUSED):
            open_as(mutated, den_haag, rotterdam)
            pytest.fail(f"undetected flip at {where}")
    assert positions > 2 * len(json.dumps(obj)) * 0.9  # (almost) every byte, two masks each


def test_inner_jwe_is_authenticated_on_its_own(den_haag, rotterdam):
    """Flips inside the JWE, re-signed by the genuine sender: the JWE layer still refuses."""
    obj = seal_to(den_haag, rotterdam)
    jwe = json.loads(unb64(obj["payload"]))
    checked = 0
    for where, mutated in _mutations(jwe):
        forged = sealed._signed(sealed._dumps(mutated), sealed.CTY_JWE, binding(), den_haag.sig)
        with pytest.raises(REFUSED):
            open_as(forged, den_haag, rotterdam)
            pytest.fail(f"undetected flip at {where}")
        checked += 1
    assert checked > 500


def _raw_jws(header: dict, payload: bytes, signer: dict) -> dict:
    """A JWS built by hand (no joserfc), to present headers our module would never write."""
    key = Ed25519PrivateKey.from_private_bytes(unb64(signer["d"]))
    protected = b64(json.dumps(header).encode())
    body = b64(payload)
    signature = key.sign(f"{protected}.{body}".encode())
    return {"payload": body, "signatures": [{"protected": protected, "signature": b64(signature)}]}


def _header(signer: dict, **changes) -> dict:
    header = {
        "alg": "Ed25519",
        "kid": jwk_thumbprint(signer),
        "cty": "json",
        "inb": 1,
        "ce": binding().to_header(),
        "crit": ["inb", "ce"],
    }
    header.update(changes)
    return {k: v for k, v in header.items() if v is not None}


@pytest.mark.parametrize(
    "changes",
    [
        {"alg": "EdDSA"},
        {"alg": "none"},
        {"inb": 2},
        {"inb": True},
        {"crit": None},
        {"crit": ["inb"]},
        {"ce": None},
        {"jku": "https://attacker.example/keys"},
        {"cty": "text"},
    ],
)
def test_headers_outside_version_1_are_refused(den_haag, changes):
    obj = _raw_jws(_header(den_haag.sig, **changes), b'{"a":1}', den_haag.sig)
    with pytest.raises(REFUSED):
        verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)])


def test_hand_built_version_1_is_accepted(den_haag):
    """The refusals above are about the header, not the hand-built JWS."""
    obj = _raw_jws(_header(den_haag.sig), b'{"a":1}', den_haag.sig)
    assert verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)]).payload == {"a": 1}


def test_structure_outside_version_1_is_refused(den_haag, rotterdam):
    obj = seal_to(den_haag, rotterdam)
    two = {**obj, "signatures": obj["signatures"] * 2}
    unprotected = {**obj, "signatures": [{**obj["signatures"][0], "header": {"kid": "x"}}]}
    flattened_unprotected = {"payload": obj["payload"], **obj["signatures"][0], "header": {"kid": "x"}}
    compact = "{protected}.{payload}.{signature}".format(payload=obj["payload"], **obj["signatures"][0])
    for bad in (two, unprotected, flattened_unprotected, compact, {}, {"payload": obj["payload"]}):
        with pytest.raises(REFUSED):
            open_as(bad, den_haag, rotterdam)


def test_errors_never_carry_plaintext(den_haag, rotterdam):
    obj = sealed._signed(b"not json: " + SECRET.encode(), sealed.CTY_JSON, binding(), den_haag.sig)
    with pytest.raises(CryptoError) as exc:
        verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)])
    assert SECRET not in str(exc.value) and SECRET not in repr(exc.value)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__


def test_seal_refuses_wrong_key_types(den_haag, rotterdam):
    with pytest.raises(CryptoError):  # an Ed25519 key offered as an encryption key
        seal(
            {"a": 1},
            envelope=binding(),
            recipients={"GM0599": [public(den_haag.sig)]},
            signer=den_haag.sig,
        )
    with pytest.raises(CryptoError):  # an X25519 key as signer
        seal(
            {"a": 1},
            envelope=binding(),
            recipients={"GM0599": [public(rotterdam.enc)]},
            signer=rotterdam.enc,
        )
    with pytest.raises(CryptoError):  # no keys at all
        seal({"a": 1}, envelope=binding(), recipients={"GM0599": []}, signer=den_haag.sig)


# --- keys -------------------------------------------------------------------------------------


def test_thumbprint_known_answer():
    # RFC 8037 appendix A.3
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert jwk_thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    assert jwk_thumbprint({**jwk, "kid": "ignored", "use": "sig"}) == jwk_thumbprint(jwk)


def test_rotation_old_key_opens_until_purge(tmp_path, den_haag):
    t0 = datetime(2025, 8, 1, tzinfo=UTC)
    store = Keystore.create(tmp_path / "keys.json", kek=os.urandom(32), now=t0)
    rotterdam_enc = [k for k in store.public_jwks(t0)["keys"] if k["use"] == "enc"]
    old = seal({"a": "old"}, envelope=binding(), recipients={"GM0599": rotterdam_enc}, signer=den_haag.sig)

    new_kid = store.add_key("enc", now=t0)
    store.promote(new_kid, retire_after=timedelta(days=30), now=t0 + timedelta(days=1))
    new_pub = [k for k in store.public_jwks(t0)["keys"] if k["kid"] == new_kid]
    new = seal({"a": "new"}, envelope=binding(), recipients={"GM0599": new_pub}, signer=den_haag.sig)

    def open_with(obj, now):
        return open_(
            obj,
            envelope=binding(),
            sender_keys=[public(den_haag.sig)],
            my_private_keys=store.encryption_private_keys(now),
        )

    t_mid = t0 + timedelta(days=20)
    assert open_with(old, t_mid) == {"a": "old"}
    assert open_with(new, t_mid) == {"a": "new"}
    assert store.purge_expired(t_mid) == []
    t_late = t0 + timedelta(days=40)
    assert store.purge_expired(t_late) == [jwk_thumbprint(rotterdam_enc[0])]
    with pytest.raises(CryptoError):
        open_with(old, t_late)
    assert open_with(new, t_late) == {"a": "new"}


# --- known answer -----------------------------------------------------------------------------


def make_vector() -> dict:
    """Run once (INBEELD_REGENERATE_VECTOR=1) when the wire format version changes."""
    sender, recipient, other = (Party(c, f"inbeeld-vector-v1:{c}") for c in ("GM0518", "GM0599", "GM0307"))
    env = binding(recipients=("GM0599", "GM0307"))
    plaintext = {"pupil": {"name": "Fictief Voorbeeld", "bsn": "111222333"}, "language": "pl"}
    return {
        "comment": "Inbeeld sealed wire format v1 known-answer vector; fixed test-only keys. "
        "Regenerate only with a new WIRE_VERSION.",
        "wire_version": sealed.WIRE_VERSION,
        "envelope": env.to_header(),
        "plaintext": plaintext,
        "sealed": seal(
            plaintext,
            envelope=env,
            recipients={r.code: [public(r.enc)] for r in (recipient, other)},
            signer=sender.sig,
        ),
        "signed": sign({"template": "we-zijn-je-kwijt", "version": "1.0.0"}, envelope=env, signer=sender.sig),
        "recipient_private_jwk": recipient.enc,
        "sender_public_jwk": public(sender.sig),
    }


def test_known_answer_vector_still_opens():
    if os.environ.get("INBEELD_REGENERATE_VECTOR") == "1":
        VECTOR.write_text(json.dumps(make_vector(), indent=2, ensure_ascii=False) + "\n")
    vector = json.loads(VECTOR.read_text())
    env = EnvelopeBinding.from_header(vector["envelope"])
    keys = [vector["sender_public_jwk"]]
    assert (
        open_(
            vector["sealed"],
            envelope=env,
            sender_keys=keys,
            my_private_keys=[vector["recipient_private_jwk"]],
        )
        == vector["plaintext"]
    )
    assert open_(vector["signed"], envelope=env, sender_keys=keys, my_private_keys=[]) == {
        "template": "we-zijn-je-kwijt",
        "version": "1.0.0",
    }
    # the documented headers, exactly
    jws_header = json.loads(unb64(vector["sealed"]["signatures"][0]["protected"]))
    assert jws_header == {
        "alg": "Ed25519",
        "kid": jwk_thumbprint(vector["sender_public_jwk"]),
        "cty": "jose+json",
        "inb": 1,
        "ce": vector["envelope"],
        "crit": ["inb", "ce"],
    }
    jwe = json.loads(unb64(vector["sealed"]["payload"]))
    assert json.loads(unb64(jwe["protected"])) == {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "cty": "json",
        "inb": 1,
        "ce": vector["envelope"],
        "crit": ["inb", "ce"],
    }
    assert all(set(r["header"]) == {"kid", "epk"} for r in jwe["recipients"])
    # the fixed keys are what they claim to be
    assert vector["recipient_private_jwk"] == Party("GM0599", "inbeeld-vector-v1:GM0599").enc


# --- subject and correlationid in the binding (second edition of version 1) --------------------


def test_binding_from_cloud_event_carries_subject_and_correlationid():
    event = CloudEvent(
        source="urn:nld:cbs:GM0518:systeem:leerlingzaken",
        type="nl.leerplicht.transfer.offered",
        recipients=["GM0599"],
        subject="tr-GM0518-0001",
        correlationid="flow-1",
    )
    b = EnvelopeBinding.from_event(event)
    assert (b.subject, b.correlationid) == ("tr-GM0518-0001", "flow-1")
    assert b.to_header()["subject"] == "tr-GM0518-0001"
    assert "subject" not in binding().to_header()  # absent, never null


@pytest.mark.parametrize("member", ["subject", "correlationid"])
@pytest.mark.parametrize("seal_it", [True, False])
def test_a_swapped_subject_or_correlationid_is_refused(den_haag, rotterdam, member, seal_it):
    env = binding(**{member: "tr-GM0518-0001"})
    if seal_it:
        obj = seal_to(den_haag, rotterdam, env=env)
    else:
        obj = sign({"a": 1}, envelope=env, signer=den_haag.sig)
    assert open_as(obj, den_haag, rotterdam, env=env)
    for other in (binding(**{member: "tr-GM0518-0002"}), binding()):
        with pytest.raises(BadSignature, match="another envelope"):
            open_as(obj, den_haag, rotterdam, env=other)


def test_first_edition_objects_verify_only_without_subject_and_correlationid(den_haag, rotterdam):
    """An object bound without subject/correlationid (all written before the second edition)
    still opens under an envelope that has neither; an envelope that names one must have it
    signed, so an old object cannot be given a subject afterwards."""
    obj = seal_to(den_haag, rotterdam, env=binding())
    assert open_as(obj, den_haag, rotterdam, env=binding()) == {"note": SECRET}
    for added in ({"subject": "tr-GM0518-0001"}, {"correlationid": "flow-1"}):
        with pytest.raises(BadSignature):
            open_as(obj, den_haag, rotterdam, env=binding(**added))


@pytest.mark.parametrize(
    "ce",
    [
        {"subject": None},
        {"subject": ""},
        {"subject": 7},
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
    ],
)
def test_malformed_binding_members_are_crypto_invalid(den_haag, ce):
    header = _header(den_haag.sig, ce={**binding().to_header(), **ce})
    obj = _raw_jws(header, b'{"a":1}', den_haag.sig)
    with pytest.raises(CryptoInvalid):
        verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)])


# --- reason codes: malformed is crypto_invalid, a wrong signature is bad_signature -------------


def test_malformed_jose_is_crypto_invalid_and_a_wrong_signature_is_bad_signature(den_haag, rotterdam):
    obj = seal_to(den_haag, rotterdam)
    garbled = {**obj, "signatures": [{**obj["signatures"][0], "protected": "not base64!"}]}
    with pytest.raises(CryptoInvalid) as exc:
        open_as(garbled, den_haag, rotterdam)
    assert exc.value.reason == "crypto_invalid"
    sig = obj["signatures"][0]["signature"]
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    wrong = {**obj, "signatures": [{**obj["signatures"][0], "signature": flipped}]}
    with pytest.raises(BadSignature) as bad:
        open_as(wrong, den_haag, rotterdam)
    assert bad.value.reason == "bad_signature"
    for unsigned in (None, "plain text", {"pupil": "x"}):
        with pytest.raises(BadSignature):
            open_as(unsigned, den_haag, rotterdam)


def test_flattened_jws_is_the_same_object(den_haag, rotterdam):
    obj = seal_to(den_haag, rotterdam)
    flattened = {"payload": obj["payload"], **obj["signatures"][0]}
    assert open_as(flattened, den_haag, rotterdam) == {"note": SECRET}


def test_epk_in_the_protected_header_only_with_one_recipient(den_haag, rotterdam, amersfoort):
    """Our own JWE rewritten by hand into jose's shape must be refused when it has two entries:
    one shared ephemeral key for several recipients is not a shape any of us writes."""
    obj = seal_to(den_haag, rotterdam, amersfoort)
    jwe = json.loads(unb64(obj["payload"]))
    header = json.loads(unb64(jwe["protected"]))
    header["epk"] = jwe["recipients"][0]["header"]["epk"]
    jwe["protected"] = b64(json.dumps(header).encode())
    for entry in jwe["recipients"]:
        entry["header"] = {"kid": entry["header"]["kid"]}
    resigned = sealed._signed(sealed._dumps(jwe), sealed.CTY_JWE, binding(), den_haag.sig)
    with pytest.raises(CryptoInvalid):
        verify(resigned, envelope=binding(), sender_keys=[public(den_haag.sig)])


def test_jose_json_nested_too_deep_is_too_deep(den_haag):
    deep = b"[" * 5000 + b"]" * 5000
    obj = _raw_jws(_header(den_haag.sig), b'{"a":' + deep + b"}", den_haag.sig)
    with pytest.raises(TooDeep):
        verify(obj, envelope=binding(), sender_keys=[public(den_haag.sig)])
    header = b64(b'{"alg":"Ed25519","x":' + deep + b"}")
    with pytest.raises(TooDeep):
        verify(
            {"payload": "e30", "signatures": [{"protected": header, "signature": "AA"}]},
            envelope=binding(),
            sender_keys=[public(den_haag.sig)],
        )
