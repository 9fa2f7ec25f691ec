"""The connector keystore and at-rest encryption: persistence, locking, secrecy, shredding."""

from __future__ import annotations

import base64
import logging
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from connectors.at_rest import decrypt_at_rest, encrypt_at_rest, unwrap_data_key, wrap_data_key
from connectors.keystore import Keystore, KeystoreError
from schemas.errors import CryptoError
from schemas.sealed import jwk_thumbprint

FAST = 2**14  # scrypt cost for tests; production default is 2**15
PASS = "correct horse battery staple"
T0 = datetime(2025, 8, 1, tzinfo=UTC)
PLAINTEXT = b"Leerling Fictief Voorbeeld, BSN 111222333, Spoorstraat 1"


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def secrets_of(store: Keystore) -> list[bytes]:
    """Every private byte string the store holds, raw and base64url."""
    out = []
    for jwk in [store.signing_key(), *store.encryption_private_keys()]:
        out += [jwk["d"].encode(), unb64(jwk["d"])]
    _, at_rest = store.at_rest_secret()
    out += [at_rest, base64.urlsafe_b64encode(at_rest).rstrip(b"=")]
    return out


@pytest.fixture
def store(tmp_path) -> Keystore:
    return Keystore.create(tmp_path / "keystore.json", passphrase=PASS, scrypt_n=FAST, now=T0)


def test_create_persist_reload(store, tmp_path):
    kid = store.add_key("enc", now=T0)
    again = Keystore.open(tmp_path / "keystore.json", passphrase=PASS)
    assert again.public_jwks(T0) == store.public_jwks(T0)
    assert again.signing_key() == store.signing_key()
    assert [k["kid"] for k in again.encryption_private_keys(T0)][1] == kid
    assert stat.S_IMODE(os.stat(tmp_path / "keystore.json").st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["keystore.json"]  # no temp files left


def test_kek_from_environment(tmp_path):
    kek = base64.urlsafe_b64encode(os.urandom(32)).decode()
    path = tmp_path / "ks.json"
    created = Keystore.from_env(path, environ={"INBEELD_KEYSTORE_KEK": kek}, create=True)
    opened = Keystore.from_env(path, environ={"INBEELD_KEYSTORE_KEK": kek})
    assert opened.signing_key() == created.signing_key()
    with pytest.raises(KeystoreError, match="KEK"):
        Keystore.from_env(path, environ={"INBEELD_KEYSTORE_PASSPHRASE": "x"})
    with pytest.raises(KeystoreError, match="INBEELD_KEYSTORE"):
        Keystore.from_env(path, environ={})


def test_wrong_passphrase_fails_clearly(store, tmp_path):
    with pytest.raises(KeystoreError, match="wrong passphrase or KEK") as exc:
        Keystore.open(tmp_path / "keystore.json", passphrase="wrong")
    assert exc.value.__cause__ is None
    with pytest.raises(KeystoreError, match="no keystore"):
        Keystore.open(tmp_path / "missing.json", passphrase=PASS)


def test_tampered_header_fails_like_a_wrong_passphrase(store, tmp_path):
    path = tmp_path / "keystore.json"
    path.write_text(path.read_text().replace('"r": 8', '"r": 9'))
    with pytest.raises(KeystoreError, match="wrong passphrase or KEK"):
        Keystore.open(path, passphrase=PASS)


def test_file_holds_no_private_key_in_clear(store, tmp_path):
    data = (tmp_path / "keystore.json").read_bytes()
    for secret in secrets_of(store):
        assert secret not in data
    for jwk in store.public_jwks(T0)["keys"]:
        assert "d" not in jwk


def test_no_secret_in_repr_str_logs_or_errors(store, caplog):
    caplog.set_level(logging.DEBUG)
    shown = [
        repr(store),
        str(store),
        repr(store.signing_key()),
        str(store.encryption_private_keys()),
    ]
    logging.getLogger("test").info("keystore %s key %s", store, store.signing_key())
    try:
        store.promote(store.primary_kid("enc"))
    except KeystoreError as exc:
        shown.append(str(exc))
    shown.append(caplog.text)
    for secret in secrets_of(store):
        for text in shown:
            assert secret.decode("latin-1") not in text
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(store)


def test_rotation_order(store):
    old = store.primary_kid("sig")
    new = store.add_key("sig", now=T0)
    statuses = {k["kid"]: k["status"] for k in store.publishable(T0)["keys"]}
    assert statuses[new] == "pending" and statuses[old] == "primary"
    assert jwk_thumbprint(store.signing_key()) == old  # pending is not used to sign
    store.promote(new, retire_after=timedelta(days=7), now=T0)
    keys = {k["kid"]: k for k in store.public_jwks(T0)["keys"]}
    assert keys[new]["status"] == "primary" and keys[old]["status"] == "retired"
    assert keys[old]["exp"] == int((T0 + timedelta(days=7)).timestamp())
    assert {k["alg"] for k in keys.values() if k["use"] == "sig"} == {"Ed25519"}
    assert store.signing_key()["kid"] == new == jwk_thumbprint(store.signing_key())
    assert old not in {k["kid"] for k in store.public_jwks(T0 + timedelta(days=8))["keys"]}
    assert store.purge_expired(T0 + timedelta(days=8)) == [old]
    with pytest.raises(KeystoreError):
        store.promote(new)


def test_at_rest_round_trip_and_aad(store):
    data_key, wrapped = wrap_data_key(store)
    blob = encrypt_at_rest(data_key, PLAINTEXT, b"pupil:42")
    assert unwrap_data_key(store, wrapped) == data_key
    assert decrypt_at_rest(unwrap_data_key(store, wrapped), blob, b"pupil:42") == PLAINTEXT
    with pytest.raises(CryptoError):
        decrypt_at_rest(data_key, blob, b"pupil:43")
    with pytest.raises(CryptoError):
        decrypt_at_rest(data_key, blob[:-1] + bytes([blob[-1] ^ 1]), b"pupil:42")


def test_shredding_one_at_rest_secret(store):
    _, old_wrapped = wrap_data_key(store)
    store.rotate_at_rest_secret()
    key, new_wrapped = wrap_data_key(store)
    store.shred_at_rest_secret(old_wrapped.split(".")[1])
    with pytest.raises(CryptoError):
        unwrap_data_key(store, old_wrapped)
    assert unwrap_data_key(store, new_wrapped) == key


def test_destroy_makes_at_rest_data_unreadable(store, tmp_path):
    data_dir = tmp_path / "store"
    data_dir.mkdir()
    data_key, wrapped = wrap_data_key(store)
    (data_dir / "record.bin").write_bytes(encrypt_at_rest(data_key, PLAINTEXT, b"record:1"))
    (data_dir / "record.key").write_text(wrapped)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(PLAINTEXT not in p.read_bytes() for p in files)
    assert all(data_key not in p.read_bytes() for p in files)

    store.destroy()
    del data_key
    assert not (tmp_path / "keystore.json").exists()
    with pytest.raises(KeystoreError):
        Keystore.open(tmp_path / "keystore.json", passphrase=PASS)
    with pytest.raises(CryptoError):
        unwrap_data_key(store, (data_dir / "record.key").read_text())
    with pytest.raises(KeystoreError):
        store.signing_key()
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert PLAINTEXT not in p.read_bytes()
            assert b"111222333" not in p.read_bytes()
