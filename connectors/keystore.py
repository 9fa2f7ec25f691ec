"""The tenant's keystore: its X25519 (enc) and Ed25519 (sig) keys, in one encrypted file.

Private keys never leave the connector (DESIGN section 6). They live in ONE local file:

    {"format": "inbeeld-keystore", "version": 1,
     "kdf": {"name": "scrypt", "salt": b64, "n": 32768, "r": 8, "p": 1}     # passphrase
          | {"name": "hkdf-sha256", "salt": b64},                          # 32-byte KEK
     "nonce": b64, "ciphertext": b64}

`ciphertext` is AES-256-GCM (`cryptography`) under the key derived from the passphrase
(scrypt) or from the KEK (HKDF-SHA256), with the header members above (`format`, `version`,
`kdf`, as compact sorted JSON) as additional data, so a tampered header fails like a wrong
passphrase. The plaintext is JSON: the key records and the at-rest secrets. The file is
written atomically (temp file in the same directory, fsync, rename, fsync the directory) with
mode 0600. One process owns a keystore at a time.

The KEK or passphrase comes from the environment (`from_env`): `INBEELD_KEYSTORE_KEK`
(base64url of 32 random bytes, e.g. from a secrets manager) or `INBEELD_KEYSTORE_PASSPHRASE`.

Rotation follows Tink's order. `add_key(use)` makes a *pending* key: published, not used to
sign or as the key senders should pick. When every peer has fetched it, `promote(kid)` makes
it *primary*; the old primary becomes *retired* with an expiry and stays published (so its
signatures verify) and usable for decryption until then. `purge_expired(now)` drops it.

`kid` is the RFC 7638 thumbprint. Private material never appears in `repr`/`str`, logs or
exceptions: the private JWKs handed out are `SecretJWK` (a dict with a redacting `repr`).

Crypto-shredding: `destroy()` overwrites and deletes the file. Honest limits: overwriting
does not reach copies a copy-on-write filesystem, an SSD's wear levelling or a back-up made
of this file; keep the keystore out of ordinary back-ups (back up the KEK-sealed file only
under the same retention rule), since a back-up of it defeats shredding.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from joserfc.jwk import OKPKey

from schemas.errors import CryptoError
from schemas.sealed import JWE_ALG, JWS_ALG, jwk_thumbprint

__all__ = ["KEK_ENV", "PASSPHRASE_ENV", "Keystore", "KeystoreError", "SecretJWK"]

KEK_ENV = "INBEELD_KEYSTORE_KEK"
PASSPHRASE_ENV = "INBEELD_KEYSTORE_PASSPHRASE"  # noqa: S105 (a variable name)
FORMAT = "inbeeld-keystore"
VERSION = 1
SCRYPT_N = 2**15  # ~32 MiB, ~0.1 s: once per process start
_MAX_SCRYPT_N = 2**20
DEFAULT_RETIREMENT = timedelta(days=30)

Use = Literal["enc", "sig"]
Status = Literal["primary", "pending", "retired"]
_CURVES: dict[str, Literal["X25519", "Ed25519"]] = {"enc": "X25519", "sig": "Ed25519"}
_ALGS = {"enc": JWE_ALG, "sig": JWS_ALG}


class KeystoreError(CryptoError):
    """The keystore cannot be opened, or an operation on it is not allowed."""

    reason = "keystore_error"


class SecretJWK(dict[str, Any]):
    """A private JWK that does not print its private part."""

    def __repr__(self) -> str:
        return f"SecretJWK(kid={self.get('kid')!r}, crv={self.get('crv')!r}, d=<redacted>)"

    __str__ = __repr__


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _ts(now: datetime | None) -> int:
    return int((now or datetime.now(UTC)).timestamp())


@dataclass
class _Key:
    kid: str
    use: Use
    status: Status
    created: int
    expires: int | None = None
    jwk: dict[str, Any] = field(default_factory=dict, repr=False)  # private JWK

    def live(self, now: int) -> bool:
        return self.expires is None or self.expires > now

    def public(self) -> dict[str, Any]:
        out = {k: self.jwk[k] for k in ("kty", "crv", "x")}
        out.update(kid=self.kid, use=self.use, alg=_ALGS[self.use], status=self.status)
        out["iat"] = self.created
        if self.expires is not None:
            out["exp"] = self.expires
        return out

    def secret(self) -> SecretJWK:
        return SecretJWK({**self.jwk, "kid": self.kid, "use": self.use, "alg": _ALGS[self.use]})

    def record(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "use": self.use,
            "status": self.status,
            "created": self.created,
            "expires": self.expires,
            "jwk": self.jwk,
        }


def _new_key(use: Use, status: Status, now: int) -> _Key:
    jwk = OKPKey.generate_key(_CURVES[use]).as_dict(private=True)
    jwk = {k: jwk[k] for k in ("kty", "crv", "x", "d")}
    return _Key(jwk_thumbprint(jwk), use, status, now, None, jwk)


def _derive(kdf: Mapping[str, Any], passphrase: str | None, kek: bytes | None) -> bytes:
    salt = _b64d(kdf["salt"])
    if kdf["name"] == "scrypt":
        if passphrase is None:
            raise KeystoreError("this keystore is locked with a passphrase, not a KEK")
        n = int(kdf["n"])
        if not 2**14 <= n <= _MAX_SCRYPT_N:
            raise KeystoreError("keystore scrypt parameters out of range")
        return Scrypt(salt=salt, length=32, n=n, r=int(kdf["r"]), p=int(kdf["p"])).derive(
            passphrase.encode("utf-8")
        )
    if kdf["name"] == "hkdf-sha256":
        if kek is None:
            raise KeystoreError("this keystore is locked with a KEK, not a passphrase")
        if len(kek) < 32:
            raise KeystoreError("a KEK has at least 32 bytes")
        info = b"inbeeld keystore v1"
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(kek)
    raise KeystoreError("unknown keystore key derivation")


def _aad(header: Mapping[str, Any]) -> bytes:
    fields = {k: header[k] for k in ("format", "version", "kdf")}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Keystore:
    """A tenant's keys. Create with `create`, load with `open` or `from_env`."""

    def __init__(self, path: Path, header: dict[str, Any], key: bytes, state: dict[str, Any]):
        self._path = path
        self._header = header
        self._file_key: bytes | None = key
        self._keys = [_Key(**r) for r in state["keys"]]
        self._at_rest: dict[str, str] = dict(state.get("at_rest", {}))
        self._current_at_rest: str | None = state.get("current_at_rest")

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        kek: bytes | None = None,
        now: datetime | None = None,
        scrypt_n: int = SCRYPT_N,
    ) -> Keystore:
        """Generate a primary enc and sig key and an at-rest secret; write a new keystore."""
        path = Path(path)
        if path.exists():
            raise KeystoreError(f"a keystore already exists at {path}")
        if (passphrase is None) == (kek is None):
            raise KeystoreError("give exactly one of a passphrase or a KEK")
        salt = _b64e(secrets.token_bytes(16))
        kdf: dict[str, Any] = (
            {"name": "scrypt", "salt": salt, "n": scrypt_n, "r": 8, "p": 1}
            if passphrase is not None
            else {"name": "hkdf-sha256", "salt": salt}
        )
        header = {"format": FORMAT, "version": VERSION, "kdf": kdf}
        t = _ts(now)
        state = {"keys": [_new_key("enc", "primary", t).record(), _new_key("sig", "primary", t).record()]}
        store = cls(path, header, _derive(kdf, passphrase, kek), state)
        store._new_at_rest_secret()
        store._save()
        return store

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        passphrase: str | None = None,
        kek: bytes | None = None,
    ) -> Keystore:
        path = Path(path)
        try:
            header = json.loads(path.read_bytes())
            if header.get("format") != FORMAT or header.get("version") != VERSION:
                raise KeystoreError(f"{path} is not an Inbeeld keystore (version {VERSION})")
            key = _derive(header["kdf"], passphrase, kek)
            raw = AESGCM(key).decrypt(_b64d(header["nonce"]), _b64d(header["ciphertext"]), _aad(header))
        except FileNotFoundError:
            raise KeystoreError(f"no keystore at {path}") from None
        except InvalidTag:
            raise KeystoreError(
                "cannot unlock the keystore: wrong passphrase or KEK, or the file is damaged"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeystoreError(f"{path} is not a readable Inbeeld keystore") from None
        return cls(path, header, key, json.loads(raw))

    @classmethod
    def from_env(
        cls,
        path: str | os.PathLike[str],
        *,
        environ: Mapping[str, str] | None = None,
        create: bool = False,
    ) -> Keystore:
        """Open (with `create`: create if absent), unlocked by `KEK_ENV` or `PASSPHRASE_ENV`."""
        env = os.environ if environ is None else environ
        kek = _b64d(env[KEK_ENV]) if env.get(KEK_ENV) else None
        passphrase = env.get(PASSPHRASE_ENV) or None
        if kek is None and passphrase is None:
            raise KeystoreError(f"set {KEK_ENV} or {PASSPHRASE_ENV} to unlock the keystore")
        if kek is not None:
            passphrase = None
        if create and not Path(path).exists():
            return cls.create(path, passphrase=passphrase, kek=kek)
        return cls.open(path, passphrase=passphrase, kek=kek)

    def destroy(self) -> None:
        """Crypto-shred: overwrite the file with random bytes, fsync, delete; forget the keys."""
        if self._path.exists():
            size = self._path.stat().st_size
            with open(self._path, "r+b") as f:
                f.write(secrets.token_bytes(size))
                f.flush()
                os.fsync(f.fileno())
            self._path.unlink()
            _fsync_dir(self._path.parent)
        self._keys.clear()
        self._at_rest.clear()
        self._current_at_rest = None
        self._file_key = None

    @property
    def path(self) -> Path:
        return self._path

    def __repr__(self) -> str:
        keys = ", ".join(f"{k.use}:{k.status}:{k.kid[:8]}" for k in self._keys)
        return f"Keystore(path={str(self._path)!r}, keys=[{keys}])"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Keystore cannot be pickled")

    # -- rotation --------------------------------------------------------------------------

    def add_key(self, use: Use, *, now: datetime | None = None) -> str:
        """Add a pending key (published, not yet primary). Returns its kid."""
        if use not in _CURVES:
            raise KeystoreError("use must be 'enc' or 'sig'")
        key = _new_key(use, "pending", _ts(now))
        self._live_state().append(key)
        self._save()
        return key.kid

    def promote(
        self, kid: str, *, retire_after: timedelta = DEFAULT_RETIREMENT, now: datetime | None = None
    ) -> None:
        """Make a pending key primary; the old primary retires and expires after `retire_after`."""
        key = self._get(kid)
        if key.status != "pending":
            raise KeystoreError(f"only a pending key can be promoted; {kid} is {key.status}")
        t = _ts(now)
        for other in self._keys:
            if other.use == key.use and other.status == "primary":
                other.status, other.expires = "retired", t + int(retire_after.total_seconds())
        key.status = "primary"
        self._save()

    def purge_expired(self, now: datetime | None = None) -> list[str]:
        """Delete keys whose expiry has passed. Returns their kids."""
        t = _ts(now)
        gone = [k.kid for k in self._live_state() if not k.live(t)]
        if gone:
            self._keys = [k for k in self._keys if k.kid not in gone]
            self._save()
        return gone

    # -- use -------------------------------------------------------------------------------

    def public_jwks(self, now: datetime | None = None) -> dict[str, Any]:
        """The JWK Set to publish: every unexpired key, public part, with status and times."""
        t = _ts(now)
        return {"keys": [k.public() for k in self._live_state() if k.live(t)]}

    publishable = public_jwks

    def primary_kid(self, use: Use) -> str:
        return self._primary(use).kid

    def signing_key(self) -> SecretJWK:
        """The primary Ed25519 private JWK, for `schemas.sealed.seal` / `sign`."""
        return self._primary("sig").secret()

    def signing_keys(self, now: datetime | None = None) -> list[SecretJWK]:
        """Every unexpired Ed25519 private JWK, primary first: a rotation proof is signed with
        whichever of them the hub still publishes (see `schemas.key_proof`)."""
        t = _ts(now)
        keys = [k for k in self._live_state() if k.use == "sig" and k.live(t)]
        keys.sort(key=lambda k: ("primary", "pending", "retired").index(k.status))
        return [k.secret() for k in keys]

    def encryption_private_keys(self, now: datetime | None = None) -> list[SecretJWK]:
        """Every unexpired X25519 private JWK (primary first), for `schemas.sealed.open_`."""
        t = _ts(now)
        keys = [k for k in self._live_state() if k.use == "enc" and k.live(t)]
        keys.sort(key=lambda k: k.status != "primary")
        return [k.secret() for k in keys]

    # -- at-rest secrets (see connectors.at_rest) ------------------------------------------

    def at_rest_secret(self, key_id: str | None = None) -> tuple[str, bytes]:
        """The current (or a named) 256-bit at-rest secret and its id. Secret: do not log."""
        self._live_state()
        key_id = key_id or self._current_at_rest
        if key_id is None or key_id not in self._at_rest:
            raise KeystoreError("that at-rest key has been shredded or never existed")
        return key_id, _b64d(self._at_rest[key_id])

    def rotate_at_rest_secret(self) -> str:
        """Start a new at-rest secret (e.g. per retention period); old ones stay until shredded."""
        self._live_state()
        key_id = self._new_at_rest_secret()
        self._save()
        return key_id

    def shred_at_rest_secret(self, key_id: str) -> None:
        """Forget one at-rest secret: every data key wrapped under it becomes unreadable."""
        self._live_state()
        if key_id == self._current_at_rest:
            raise KeystoreError("rotate before shredding the current at-rest secret")
        self._at_rest.pop(key_id, None)
        self._save()

    # -- internals -------------------------------------------------------------------------

    def _new_at_rest_secret(self) -> str:
        key_id = secrets.token_hex(8)
        self._at_rest[key_id] = _b64e(secrets.token_bytes(32))
        self._current_at_rest = key_id
        return key_id

    def _live_state(self) -> list[_Key]:
        if self._file_key is None:
            raise KeystoreError("this keystore has been destroyed")
        return self._keys

    def _get(self, kid: str) -> _Key:
        for key in self._live_state():
            if key.kid == kid:
                return key
        raise KeystoreError(f"no key {kid} in this keystore")

    def _primary(self, use: Use) -> _Key:
        for key in self._live_state():
            if key.use == use and key.status == "primary":
                return key
        raise KeystoreError(f"no primary {use} key")

    def _save(self) -> None:
        if self._file_key is None:
            raise KeystoreError("this keystore has been destroyed")
        state = {
            "keys": [k.record() for k in self._keys],
            "at_rest": self._at_rest,
            "current_at_rest": self._current_at_rest,
        }
        nonce = secrets.token_bytes(12)
        plaintext = json.dumps(state, separators=(",", ":")).encode()
        ciphertext = AESGCM(self._file_key).encrypt(nonce, plaintext, _aad(self._header))
        doc = {**self._header, "nonce": _b64e(nonce), "ciphertext": _b64e(ciphertext)}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(self._path, json.dumps(doc, indent=1).encode())
