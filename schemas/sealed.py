"""The sealed wire format: what goes in a CloudEvent's `data` (DESIGN sections 3 and 6).

Standard JOSE only (RFC 7515/7516/7518/8037/9864), built with joserfc on `cryptography`.
This module is the one place that knows the format; its version is `WIRE_VERSION`, carried
in the protected headers as `"inb"`. A change to anything below is a new version.

Wire format, version 1
----------------------
Sealed (personal data) — encrypt, then sign::

    data = JWS, General JSON Serialization, exactly one signature, no unprotected header
      {"payload": BASE64URL(UTF8(JSON(jwe))),
       "signatures": [{"protected": BASE64URL(UTF8(JSON(jws_header))), "signature": ...}]}

    jws_header = {"alg": "Ed25519",                 # RFC 9864 fully-specified EdDSA
                  "kid": <RFC 7638 thumbprint of the sender's Ed25519 key>,
                  "cty": "jose+json",               # the payload is a JWE (JSON serialization)
                  "inb": 1,                         # WIRE_VERSION
                  "ce":  {"id", "type", "source", "recipients": [...],    # the envelope binding
                          "subject"?, "correlationid"?},   # each only when the envelope has it
                  "crit": ["inb", "ce"]}

    jwe = JWE, General JSON Serialization, no shared unprotected header, no `aad`, no `zip`
      {"protected": BASE64URL(UTF8(JSON(jwe_header))), "iv", "ciphertext", "tag",
       "recipients": [{"header": {"kid": <thumbprint of the recipient's X25519 key>,
                                  "epk": <ephemeral X25519 public JWK>},
                       "encrypted_key": ...}, ...]}     # one entry per recipient KEY

    jwe_header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM",
                  "cty": "json" | "octet-stream",   # plaintext is a JSON object | raw bytes
                  "inb": 1, "ce": {...same binding...}, "crit": ["inb", "ce"]}

Signed only (no personal data: templates, notices' blind indexes) — the same JWS, with
`"cty": "json"` and the UTF-8 JSON object itself as payload.

Read, besides the shape above (written by other JOSE implementations; the same objects in
other syntax, so the same signatures and the same AEAD): the Flattened JSON Serialization of
the JWS (one signature) and of the JWE (one recipient), and, with exactly one recipient, the
`epk` in the JWE protected header instead of the recipient entry (RFC 7516 allows it;
panva/jose 6 writes it so), the entry's header then being `{"kid"}` alone. The Compact
Serialization is refused: `data` is a JSON object, and a compact JWE could not carry the
per-recipient `kid` outside its protected header.

Versions. `inb` stays 1 for this additive change: 1 (first edition) bound id, type, source
and recipients; since the second edition the binding also carries `subject` and
`correlationid` whenever the envelope has them. An object of the first edition still
verifies against an envelope without subject and correlationid, and only against such an
envelope: a message whose envelope names a subject must have it signed. A verifier of the
first edition refuses a `ce` with the new members (it treats unknown members as malformed),
so receivers (hub, connectors) are upgraded before senders. The known-answer vector
(tests/data/sealed_vector.json) has neither member and verifies under both editions.

The envelope binding (`ce`) is in the JWS protected header (so the hub, which cannot
decrypt, refuses re-addressed or replayed messages) and in the JWE protected header, which
is the AEAD's additional data (so a recipient that re-signs someone else's ciphertext under
a new envelope is caught when the next recipient opens it). `inb` and `ce` are marked
critical: an implementation that does not understand them must reject the object (RFC 7515
section 4.1.11), which joserfc and panva/jose both do unless told these names.

The JWS covers the whole JWE byte for byte (including the per-recipient headers that JWE
itself leaves unprotected). `kid` is always the RFC 7638 thumbprint, recomputed from the key
material: a `kid` member a caller passes inside a JWK is not trusted.

Errors: `BadSignature` (`bad_signature`) — no JWS at all, a signature that does not verify,
by a key not in the sender's directory keys, or a binding that differs from the envelope;
`CryptoInvalid` (`crypto_invalid`, a `CryptoError`) — a malformed JOSE object, an unsupported
version or algorithm; `TooDeep` (`too_deep`) — JSON inside nested beyond
`schemas.nesting.MAX_DEPTH`; `CryptoError` — nothing we can decrypt. Messages never carry
plaintext and exceptions are raised `from None` so no library error can drag plaintext along.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from joserfc import jwe, jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwe import GeneralJSONEncryption, JWERegistry
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter
from joserfc.util import urlsafe_b64decode

from schemas.errors import BadSignature, CryptoError, CryptoInvalid
from schemas.nesting import check_json

__all__ = [
    "JWE_ALG",
    "JWE_ENC",
    "JWS_ALG",
    "WIRE_VERSION",
    "EnvelopeBinding",
    "VerifiedObject",
    "jwk_thumbprint",
    "looks_like_jose",
    "open_",
    "seal",
    "sign",
    "verify",
]

WIRE_VERSION = 1
JWS_ALG = "Ed25519"
JWE_ALG = "ECDH-ES+A256KW"
JWE_ENC = "A256GCM"
CTY_JWE = "jose+json"
CTY_JSON = "json"
CTY_BYTES = "octet-stream"
_CRIT = ["inb", "ce"]
_MAX_BYTES = 4 * 1_048_576  # well above the envelope's 1 MiB; the envelope limit is the real one
_MAX_RECIPIENT_KEYS = 1024  # 500 recipients (envelope max) x 2 keys during a rotation, rounded up

JWK = Mapping[str, Any]


def _check_version(value: Any) -> None:
    if value != WIRE_VERSION or isinstance(value, bool):
        raise ValueError(f"must be {WIRE_VERSION}")


def _check_binding(value: Any) -> None:
    EnvelopeBinding.from_header(value)


_HEADERS = {
    "inb": HeaderParameter("Inbeeld wire-format version", _check_version, required=True),
    "ce": HeaderParameter("CloudEvents envelope binding", _check_binding, required=True),
}


if JWS_ALG not in JWSRegistry.algorithms:  # pragma: no cover - depends on the installed joserfc
    raise ImportError("schemas.sealed needs a joserfc with RFC 9864 'Ed25519' (tested: 1.8.0)")


class _JWS(JWSRegistry):
    max_header_length = 65_536  # the binding lists up to 500 recipients
    max_payload_length = _MAX_BYTES


class _JWE(JWERegistry):
    max_protected_header_length = 65_536
    max_ciphertext_length = _MAX_BYTES
    max_aad_length = 0


_JWS_REGISTRY = _JWS(header_registry=_HEADERS, algorithms=[JWS_ALG])
# verify_all_recipients=False: we only ever hand joserfc the entries addressed to our keys.
_JWE_REGISTRY = _JWE(
    header_registry=_HEADERS,
    algorithms=[JWE_ALG, JWE_ENC],
    verify_all_recipients=False,
    max_recipients=_MAX_RECIPIENT_KEYS,
)


_BINDING_REQUIRED = frozenset({"id", "type", "source", "recipients"})
_BINDING_OPTIONAL = ("subject", "correlationid")


@dataclass(frozen=True, slots=True)
class EnvelopeBinding:
    """The envelope attributes a sealed object is bound to. Order of `recipients` counts.

    `subject` and `correlationid` are bound when the envelope has them (and only then: the
    header then carries the member, never a null), so an event whose envelope has a subject
    verifies only if the signer bound that very subject."""

    id: str
    type: str
    source: str
    recipients: tuple[str, ...]
    subject: str | None = None
    correlationid: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.recipients, tuple):
            object.__setattr__(self, "recipients", tuple(self.recipients))
        fields = (self.id, self.type, self.source, *self.recipients)
        if not all(isinstance(v, str) and v for v in fields) or not self.recipients:
            raise CryptoInvalid("envelope binding needs a non-empty id, type, source and recipients")
        for name in _BINDING_OPTIONAL:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise CryptoInvalid(f"envelope binding: {name} must be a non-empty string when present")

    @classmethod
    def from_event(cls, event: Any) -> EnvelopeBinding:
        """From anything with `id`, `type`, `source`, `recipients` and optionally `subject`,
        `correlationid` (a `CloudEvent`)."""
        return cls(
            id=event.id,
            type=event.type,
            source=event.source,
            recipients=tuple(event.recipients),
            subject=getattr(event, "subject", None),
            correlationid=getattr(event, "correlationid", None),
        )

    @classmethod
    def from_header(cls, value: Any) -> EnvelopeBinding:
        if not isinstance(value, dict) or not _BINDING_REQUIRED <= set(value):
            raise CryptoInvalid("malformed envelope binding")
        if not set(value) <= _BINDING_REQUIRED | set(_BINDING_OPTIONAL):
            raise CryptoInvalid("malformed envelope binding: unknown member")
        if not isinstance(value["recipients"], list):
            raise CryptoInvalid("malformed envelope binding")
        optional = {name: value[name] for name in _BINDING_OPTIONAL if name in value}
        if any(v is None for v in optional.values()):
            raise CryptoInvalid("malformed envelope binding: an absent member is left out, not null")
        return cls(value["id"], value["type"], value["source"], tuple(value["recipients"]), **optional)

    def to_header(self) -> dict[str, Any]:
        header: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "recipients": list(self.recipients),
        }
        for name in _BINDING_OPTIONAL:
            if getattr(self, name) is not None:
                header[name] = getattr(self, name)
        return header


@dataclass(frozen=True, slots=True)
class VerifiedObject:
    """What `verify` vouches for: who signed, for which envelope, and the signed content.

    `payload` is the inner JWE (General JSON) for a sealed object — opaque to the hub — or the
    signed JSON object for a signed-only one. `recipient_kids` are the JWE's recipient key ids
    (empty when signed only), so the hub can check each addressee's current key is present.
    """

    kind: Literal["sealed", "signed"]
    signer_kid: str
    binding: EnvelopeBinding
    payload: dict[str, Any]
    recipient_kids: tuple[str, ...] = ()
    wire_version: int = WIRE_VERSION

    @property
    def encrypted(self) -> bool:
        return self.kind == "sealed"


# --- keys ------------------------------------------------------------------------------------

_THUMBPRINT_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}


def jwk_thumbprint(jwk: JWK) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url without padding): the `kid` everywhere."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty", ""))
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        raise CryptoError("cannot compute a thumbprint: not a JWK with its required members")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _import_okp(jwk: JWK, crv: str, *, private: bool) -> tuple[str, OKPKey]:
    """Import only the key material (so a stray `use`/`kid` member cannot confuse joserfc)."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != crv:
        raise CryptoError(f"expected an OKP {crv} JWK")
    members = ("kty", "crv", "x", "d") if private else ("kty", "crv", "x")
    if private and "d" not in jwk:
        raise CryptoError(f"expected a private {crv} JWK")
    try:
        key = OKPKey.import_key({m: jwk[m] for m in members})
    except (JoseError, ValueError, TypeError, KeyError):
        raise CryptoError(f"invalid {crv} JWK") from None
    if private and key.as_dict(private=False)["x"] != jwk["x"]:
        raise CryptoError(f"invalid {crv} JWK: public part does not match the private key")
    return jwk_thumbprint(key.as_dict(private=False)), key


def _index(keys: Iterable[JWK], crv: str, *, private: bool) -> dict[str, OKPKey]:
    out: dict[str, OKPKey] = {}
    for jwk in keys:
        kid, key = _import_okp(jwk, crv, private=private)
        out[kid] = key
    return out


# --- strict decoding -------------------------------------------------------------------------


def _b64decode(segment: Any) -> bytes:
    """Base64url without padding, canonical only (joserfc's strict decoder: no `+/=`, no
    stray characters, unused trailing bits must be zero), so no encoding is malleable."""
    if not isinstance(segment, str):
        raise CryptoInvalid("malformed JOSE object")
    try:
        return urlsafe_b64decode(segment.encode("ascii"))
    except (binascii.Error, ValueError):
        raise CryptoInvalid("malformed JOSE object") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate member")
    return out


def _json_object(raw: bytes) -> dict[str, Any]:
    # Bounded before parsing (`TooDeep`, reason too_deep): json.loads recurses per level.
    check_json(raw, what="JSON in the JOSE object")
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError):
        raise CryptoInvalid("malformed JSON in JOSE object") from None
    if not isinstance(value, dict):
        raise CryptoInvalid("malformed JOSE object")
    return value


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


_JWS_HEADER = {"alg", "kid", "cty", "inb", "ce", "crit"}
_JWE_HEADER = {"alg", "enc", "cty", "inb", "ce", "crit"}
_JWE_BODY = {"protected", "iv", "ciphertext", "tag"}
_COMPACT = "compact serialization is not part of the wire format: use the JSON serialization"


def _check_protected(header: dict[str, Any], envelope: EnvelopeBinding, layer: str) -> None:
    version = header.get("inb")
    if type(version) is not int or version != WIRE_VERSION:
        raise CryptoInvalid(f"unsupported {layer} wire version")
    if not isinstance(header.get("crit"), list) or set(header["crit"]) != set(_CRIT):
        raise CryptoInvalid(f"{layer} must mark 'inb' and 'ce' critical")
    if EnvelopeBinding.from_header(header.get("ce")) != envelope:
        raise BadSignature(f"the {layer} is bound to another envelope (re-addressed or replayed)")


def _exact_keys(value: Any, members: set[str]) -> None:
    if not isinstance(value, dict) or set(value) != members:
        raise CryptoInvalid("malformed JOSE object")


def looks_like_jose(data: Any) -> bool:
    """Whether `data` has the shape of a JOSE object in JSON serialization (a JWS or JWE,
    General or Flattened): a cheap test of form, no verification."""
    return isinstance(data, Mapping) and bool({"protected", "signatures", "ciphertext"} & set(data))


def _general_jws(obj: Any) -> dict[str, Any]:
    """The JWS in General JSON Serialization. The Flattened one (RFC 7515 section 7.2.2, what
    other implementations write for a single signature) is the same object in other
    syntax, so it is accepted; the signature covers the same bytes either way."""
    if isinstance(obj, str) and obj.count(".") == 2:
        raise CryptoInvalid(_COMPACT)
    if not isinstance(obj, Mapping) or not {"payload", "signatures", "signature"} & set(obj):
        raise BadSignature("the data is not signed (no JWS)")
    general: dict[str, Any] = dict(obj)
    if "signatures" not in general and "signature" in general:
        _exact_keys(general, {"payload", "protected", "signature"})
        signature = {"protected": general["protected"], "signature": general["signature"]}
        return {"payload": general["payload"], "signatures": [signature]}
    _exact_keys(general, {"payload", "signatures"})
    return general


def _general_jwe(obj: dict[str, Any]) -> dict[str, Any]:
    """The JWE in General JSON Serialization; a Flattened one (one recipient) is rewritten."""
    if "recipients" not in obj and "encrypted_key" in obj:
        _exact_keys(obj, _JWE_BODY | {"header", "encrypted_key"})
        entry = {"header": obj["header"], "encrypted_key": obj["encrypted_key"]}
        return {**{k: obj[k] for k in _JWE_BODY}, "recipients": [entry]}
    _exact_keys(obj, _JWE_BODY | {"recipients"})
    return obj


def _check_epk(epk: Any) -> None:
    _exact_keys(epk, {"kty", "crv", "x"})
    if (epk["kty"], epk["crv"]) != ("OKP", "X25519") or len(_b64decode(epk["x"])) != 32:
        raise CryptoInvalid("malformed JOSE object: ephemeral key")


# --- seal / sign -----------------------------------------------------------------------------


def _signed(payload: bytes, cty: str, envelope: EnvelopeBinding, signer: JWK) -> dict[str, Any]:
    kid, key = _import_okp(signer, "Ed25519", private=True)
    header = {
        "alg": JWS_ALG,
        "kid": kid,
        "cty": cty,
        "inb": WIRE_VERSION,
        "ce": envelope.to_header(),
        "crit": list(_CRIT),
    }
    try:
        out = jws.serialize_json([{"protected": header}], payload, key, registry=_JWS_REGISTRY)
    except (JoseError, ValueError):
        raise CryptoError("signing failed") from None
    return dict(out)


def seal(
    payload: bytes | Mapping[str, Any],
    *,
    envelope: EnvelopeBinding,
    recipients: Mapping[str, Sequence[JWK]],
    signer: JWK,
) -> dict[str, Any]:
    """Encrypt `payload` to every key in `recipients` (tenant -> X25519 public JWKs), bind it
    to `envelope`, and sign it with the sender's Ed25519 private JWK. Returns the JWS (dict)."""
    if isinstance(payload, bytes):
        plaintext, cty = payload, CTY_BYTES
    elif isinstance(payload, Mapping):
        plaintext, cty = _dumps(dict(payload)), CTY_JSON
    else:
        raise CryptoError("payload must be bytes or a JSON object")
    keys = _index((k for ks in recipients.values() for k in ks), "X25519", private=False)
    if not keys:
        raise CryptoError("no recipient encryption keys")
    protected = {
        "alg": JWE_ALG,
        "enc": JWE_ENC,
        "cty": cty,
        "inb": WIRE_VERSION,
        "ce": envelope.to_header(),
        "crit": list(_CRIT),
    }
    obj = GeneralJSONEncryption(protected, plaintext)
    for kid, key in keys.items():
        obj.add_recipient({"kid": kid}, key)
    try:
        sealed_jwe = jwe.encrypt_json(obj, None, registry=_JWE_REGISTRY)
    except (JoseError, ValueError):
        raise CryptoError("encryption failed") from None
    return _signed(_dumps(sealed_jwe), CTY_JWE, envelope, signer)


def sign(payload: Mapping[str, Any], *, envelope: EnvelopeBinding, signer: JWK) -> dict[str, Any]:
    """Sign a JSON object without encrypting it (events that carry no personal data)."""
    if not isinstance(payload, Mapping):
        raise CryptoError("a signed payload must be a JSON object")
    return _signed(_dumps(dict(payload)), CTY_JSON, envelope, signer)


# --- verify / open ---------------------------------------------------------------------------


def verify(
    sealed: Mapping[str, Any], *, envelope: EnvelopeBinding, sender_keys: Iterable[JWK]
) -> VerifiedObject:
    """Check the sender's signature (key chosen by `kid` among `sender_keys`, the sender's
    Ed25519 public keys from the directory) and that every binding equals `envelope`.
    Never decrypts: this is what the hub calls.

    Raises `BadSignature` (no JWS at all, a key not among `sender_keys`, a signature that
    does not verify, another envelope), `CryptoInvalid` (malformed or outside version 1),
    `TooDeep` (JSON inside nested beyond `schemas.nesting.MAX_DEPTH`)."""
    jws_obj = _general_jws(sealed)
    signatures = jws_obj["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise CryptoInvalid("malformed JOSE object: expected exactly one signature")
    _exact_keys(signatures[0], {"protected", "signature"})
    header = _json_object(_b64decode(signatures[0]["protected"]))
    _b64decode(signatures[0]["signature"])
    if header.get("alg") != JWS_ALG:
        raise CryptoInvalid(f"unsupported signature algorithm; expected {JWS_ALG}")
    _exact_keys(header, _JWS_HEADER)
    keys = _index(sender_keys, "Ed25519", private=False)
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise BadSignature("signed by a key that is not one of the sender's keys")
    try:
        checked = jws.deserialize_json(jws_obj, keys[kid], registry=_JWS_REGISTRY)  # type: ignore[call-overload]
    except BadSignatureError:
        raise BadSignature("signature does not verify") from None
    except (JoseError, ValueError, TypeError, KeyError):
        raise CryptoInvalid("malformed JOSE object") from None
    _check_protected(header, envelope, "signature")
    payload = _json_object(checked.payload)  # decoded strictly by joserfc, after the signature
    if header.get("cty") == CTY_JSON:
        return VerifiedObject("signed", kid, envelope, payload)
    if header.get("cty") != CTY_JWE:
        raise CryptoInvalid("unsupported content type")
    payload = _general_jwe(payload)
    jwe_header = _json_object(_b64decode(payload["protected"]))
    if jwe_header.get("alg") != JWE_ALG or jwe_header.get("enc") != JWE_ENC:
        raise CryptoInvalid(f"unsupported encryption; expected {JWE_ALG} with {JWE_ENC}")
    entries = payload["recipients"]
    if not isinstance(entries, list) or not entries:
        raise CryptoInvalid("malformed JOSE object: no recipients")
    # RFC 7516 lets the ephemeral key stand in the protected header when there is one
    # recipient (panva/jose writes it there): then it is in the AEAD's additional data too,
    # and the recipient entry names only the key id.
    shared_epk = "epk" in jwe_header and len(entries) == 1
    _exact_keys(jwe_header, _JWE_HEADER | ({"epk"} if shared_epk else set()))
    if shared_epk:
        _check_epk(jwe_header["epk"])
    if jwe_header.get("cty") not in (CTY_JSON, CTY_BYTES) or "zip" in jwe_header:
        raise CryptoInvalid("unsupported encrypted content type")
    _check_protected(jwe_header, envelope, "encryption")
    # Per-recipient headers are outside the JWE's AEAD (RFC 7516): the JWS covers them, and we
    # also accept nothing but the exact shapes above, so no parser has leeway.
    if len(_b64decode(payload["iv"])) != 12 or len(_b64decode(payload["tag"])) != 16:
        raise CryptoInvalid("malformed JOSE object: iv or tag")
    if not isinstance(payload["ciphertext"], str):  # decoded (strictly) by whoever opens it
        raise CryptoInvalid("malformed JOSE object: ciphertext")
    kids = []
    for entry in entries:
        _exact_keys(entry, {"header", "encrypted_key"})
        _exact_keys(entry["header"], {"kid"} if shared_epk else {"kid", "epk"})
        if not shared_epk:
            _check_epk(entry["header"]["epk"])
        kid_ = entry["header"]["kid"]
        if len(_b64decode(entry["encrypted_key"])) != 40 or len(_b64decode(kid_)) != 32:
            raise CryptoInvalid("malformed JOSE object: recipient entry")
        kids.append(kid_)
    return VerifiedObject("sealed", kid, envelope, payload, tuple(kids))


def open_(
    sealed: Mapping[str, Any],
    *,
    envelope: EnvelopeBinding,
    sender_keys: Iterable[JWK],
    my_private_keys: Iterable[JWK],
) -> bytes | dict[str, Any]:
    """`verify`, then decrypt with whichever of my X25519 private JWKs a recipient entry names.

    Returns the plaintext: a dict if a JSON object was sealed, else bytes. A signed-only
    object is returned as its (verified) JSON object.
    """
    verified = verify(sealed, envelope=envelope, sender_keys=sender_keys)
    if verified.kind == "signed":
        return verified.payload
    mine = _index(my_private_keys, "X25519", private=True)
    entries = [e for e in verified.payload["recipients"] if e["header"]["kid"] in mine]
    if not entries:
        raise CryptoError("not addressed to any of my keys")
    for entry in entries:
        one = {**verified.payload, "recipients": [entry]}
        try:
            obj = jwe.decrypt_json(one, mine[entry["header"]["kid"]], registry=_JWE_REGISTRY)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        _check_protected(obj.protected, envelope, "encryption")
        assert obj.plaintext is not None
        if obj.protected["cty"] == CTY_JSON:
            return _json_object(obj.plaintext)
        return obj.plaintext
    raise CryptoError("cannot decrypt")
