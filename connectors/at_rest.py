"""Encryption of what a connector keeps at rest, so it can be crypto-shredded (DESIGN section 6).

Internal to the connector (behind `inbeeld-connector`), not SDK: see `connectors.__all__`.

Envelope encryption. Every record (or batch) gets a fresh random 256-bit *data key*; only its
*wrapped* form is stored beside the ciphertext. The wrapping key is derived (HKDF-SHA256) from
an at-rest secret held in the tenant's `Keystore`. Destroying that secret
(`Keystore.shred_at_rest_secret`, e.g. per retention period) or the whole keystore
(`Keystore.destroy`) makes every record wrapped under it unreadable, in back-ups too.

Formats, version 1:
    wrapped data key  "ik1.<at-rest secret id>.<base64url(AES-KW(wrapping key, data key))>"
                      (RFC 3394 key wrap: deterministic and integrity-checked)
    ciphertext blob   0x01 || nonce (12 bytes) || AES-256-GCM(data key, nonce, plaintext,
                      aad = 0x01 || caller's aad)

Use the record's identity (table, id) as `aad`, so a blob cannot be swapped with another's.
Do not put personal data in `aad`: it is not encrypted.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from schemas.errors import CryptoError

__all__ = [
    "DATA_KEY_BYTES",
    "decrypt_at_rest",
    "encrypt_at_rest",
    "new_data_key",
    "unwrap_data_key",
    "wrap_data_key",
]

DATA_KEY_BYTES = 32
_WRAP_PREFIX = "ik1"
_BLOB_VERSION = b"\x01"
_NONCE_BYTES = 12


class AtRestSecrets(Protocol):
    """What `Keystore` offers for at-rest encryption."""

    def at_rest_secret(self, key_id: str | None = None) -> tuple[str, bytes]: ...


def _wrapping_key(secret: bytes, key_id: str) -> bytes:
    info = b"inbeeld at-rest wrapping key v1:" + key_id.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def new_data_key() -> bytes:
    return secrets.token_bytes(DATA_KEY_BYTES)


def wrap_data_key(keystore: AtRestSecrets, data_key: bytes | None = None) -> tuple[bytes, str]:
    """Wrap `data_key` (a new random one if omitted) under the keystore's current at-rest
    secret. Returns `(data_key, wrapped)`; store only `wrapped`."""
    data_key = new_data_key() if data_key is None else data_key
    if len(data_key) != DATA_KEY_BYTES:
        raise CryptoError("a data key has 32 bytes")
    key_id, secret = keystore.at_rest_secret()
    wrapped = aes_key_wrap(_wrapping_key(secret, key_id), data_key)
    return data_key, f"{_WRAP_PREFIX}.{key_id}.{base64.urlsafe_b64encode(wrapped).decode()}"


def unwrap_data_key(keystore: AtRestSecrets, wrapped: str) -> bytes:
    """The data key inside `wrapped`; `CryptoError` if its secret was shredded or it was altered."""
    try:
        prefix, key_id, body = wrapped.split(".")
        if prefix != _WRAP_PREFIX:
            raise ValueError
        raw = base64.urlsafe_b64decode(body.encode())
    except (ValueError, binascii.Error, AttributeError):
        raise CryptoError("not a wrapped data key") from None
    try:
        key_id, secret = keystore.at_rest_secret(key_id)
    except CryptoError:
        raise CryptoError("the data key cannot be unwrapped: its at-rest secret is gone") from None
    try:
        return aes_key_unwrap(_wrapping_key(secret, key_id), raw)
    except (InvalidUnwrap, ValueError):
        raise CryptoError("the data key cannot be unwrapped") from None


def encrypt_at_rest(data_key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return _BLOB_VERSION + nonce + AESGCM(data_key).encrypt(nonce, plaintext, _BLOB_VERSION + aad)


def decrypt_at_rest(data_key: bytes, blob: bytes, aad: bytes = b"") -> bytes:
    """The plaintext; `CryptoError` (never echoing data) if the blob, key or aad is wrong."""
    if blob[:1] != _BLOB_VERSION or len(blob) < 1 + _NONCE_BYTES + 16:
        raise CryptoError("not an at-rest blob (version 1)")
    nonce, body = blob[1 : 1 + _NONCE_BYTES], blob[1 + _NONCE_BYTES :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, _BLOB_VERSION + aad)
    except (InvalidTag, ValueError):
        raise CryptoError("at-rest data cannot be decrypted") from None
