"""Blind index for neighbour notices (DESIGN sections 2 and 6).

`value = HMAC-SHA256(group_key, ASCII(normalised BSN))`, hex, sent with the group key's id.
The group key is shared by the group's members (distributed sealed to each member in
`group.key_shared`) and never seen by the hub.

Honest limit: the BSN space is small (~10^8 valid numbers), so anyone holding the group key
can compute the index of every BSN and so reverse any index in minutes. The index hides
pupils from the hub and from outsiders, not from a dishonest member. That is why membership
is for bodies with a legal task and every match is audited; rotate the group key when a
member leaves. A blind index is personal data under the GDPR for whoever holds the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from schemas.errors import SchemaInvalid
from schemas.sealed import jwk_thumbprint

__all__ = ["GROUP_KEY_BYTES", "BlindIndex", "blind_index", "new_group_key", "normalise_bsn"]

GROUP_KEY_BYTES = 32
_SEPARATORS = re.compile(r"[\s.\-]")
_WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)


@dataclass(frozen=True, slots=True)
class BlindIndex:
    key_id: str
    value_hex: str


def normalise_bsn(text: str) -> str:
    """Strip whitespace, dots and hyphens, left-pad to 9 digits, apply the 11-test.

    Raises `SchemaInvalid` (whose message never repeats the input).
    """
    digits = _SEPARATORS.sub("", text) if isinstance(text, str) else ""
    if not (digits.isascii() and digits.isdigit() and 1 <= len(digits) <= 9):
        raise SchemaInvalid("not a BSN: expected up to 9 digits", field="bsn")
    bsn = digits.zfill(9)
    if int(bsn) == 0 or sum(int(d) * w for d, w in zip(bsn, _WEIGHTS, strict=True)) % 11:
        raise SchemaInvalid("not a BSN: fails the 11-test", field="bsn")
    return bsn


def blind_index(bsn: str, key: bytes, key_id: str) -> BlindIndex:
    """The blind index of `bsn` (any common formatting) under the group key `key`."""
    if len(key) < GROUP_KEY_BYTES:
        raise ValueError(f"a group key has at least {GROUP_KEY_BYTES} bytes")
    mac = hmac.new(key, normalise_bsn(bsn).encode("ascii"), hashlib.sha256)
    return BlindIndex(key_id=key_id, value_hex=mac.hexdigest())


def new_group_key() -> tuple[str, bytes]:
    """A fresh 256-bit group key and its id (RFC 7638 thumbprint of it as an `oct` JWK)."""
    key = secrets.token_bytes(GROUP_KEY_BYTES)
    k = base64.urlsafe_b64encode(key).rstrip(b"=").decode()
    return jwk_thumbprint({"kty": "oct", "k": k}), key
