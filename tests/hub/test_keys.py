"""The key directory through the real API (ASGI), store and broker: register, refuse, publish,
announce."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.keystore import Keystore
from hub.api.app import create_app
from schemas.sealed import jwk_thumbprint
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

ROTATED = "nl.leerplicht.key.rotated"
TENANTS = ("GM0518", "GM0599", "GM0307", "GM0957", "ingrado")


@pytest.fixture
async def api(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hub.settings, hub.db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        yield c


def keystore(tmp_path: Path, name: str = "ks") -> Keystore:
    return Keystore.create(tmp_path / f"{name}.json", kek=os.urandom(32))


async def auth(hub: RunningHub, code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await hub.token('tenant', code)}"}


def rotated_for(tenant: str, kids: set[str]):
    return lambda e: e.type == ROTATED and e.data["tenant"] == tenant and set(e.data["kids"]) == kids


async def test_register_publish_and_announce(hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path) -> None:
    ks = keystore(tmp_path)
    jwks = ks.public_jwks()
    kids = {k["kid"] for k in jwks["keys"]}
    r = await api.put("/keys", json=jwks, headers=await auth(hub, "GM0957"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tenant"] == "GM0957" and {k["kid"] for k in body["keys"]} == kids
    for k in body["keys"]:
        assert "d" not in k and k["kid"] == jwk_thumbprint(k) and k["status"] == "primary"
        assert k["alg"] == {"sig": "Ed25519", "enc": "ECDH-ES+A256KW"}[k["use"]]

    # any authenticated caller reads it, as a JWK Set
    r = await api.get("/tenants/GM0957/keys", headers=await auth(hub, "GM0518"))
    assert r.status_code == 200 and {k["kid"] for k in r.json()["keys"]} == kids
    assert (await api.get("/tenants/GM0957/keys")).status_code == 401
    assert (await api.get("/tenants/GM9999/keys", headers=await auth(hub, "GM0518"))).status_code == 404

    # every tenant hears about it, with a hub sequence, from the hub's source
    for code in TENANTS:
        [event] = await hub.receive(code, rotated_for("GM0957", kids))
        assert event.sequence is not None and event.source == hub.settings.hub_source

    # the same set again is no change: no second announcement
    r = await api.put("/keys", json=jwks, headers=await auth(hub, "GM0957"))
    assert r.status_code == 200
    assert not [e for e in await hub.drain("GM0599") if e.type == ROTATED and e.data["tenant"] == "GM0957"]


async def test_rotation_keeps_the_old_key_published_until_withdrawn(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    headers = await auth(hub, "GM0307")
    ks = keystore(tmp_path)
    old = ks.primary_kid("enc")
    assert (await api.put("/keys", json=ks.public_jwks(), headers=headers)).status_code == 200
    new = ks.add_key("enc")
    r = await api.put("/keys", json=ks.public_jwks(), headers=headers)
    status = {k["kid"]: k["status"] for k in r.json()["keys"]}
    assert status[old] == "primary" and status[new] == "pending"
    ks.promote(new)
    r = await api.put("/keys", json=ks.public_jwks(), headers=headers)
    published = {k["kid"]: k for k in r.json()["keys"]}
    assert published[new]["status"] == "primary" and published[old]["status"] == "retired"
    assert "exp" in published[old]
    # leaving a key out withdraws it
    jwks = {"keys": [k for k in ks.public_jwks()["keys"] if k["kid"] != old]}
    r = await api.put("/keys", json=jwks, headers=headers)
    assert old not in {k["kid"] for k in r.json()["keys"]}
    r = await api.get("/tenants/GM0307/keys", headers=headers)
    assert old not in {k["kid"] for k in r.json()["keys"]}
    await hub.receive("GM0307", rotated_for("GM0307", {k["kid"] for k in jwks["keys"]}))


def _with(change: dict[str, Any], index: int = 0) -> Any:
    def make(ks: Keystore) -> dict[str, Any]:
        jwks = ks.public_jwks()
        jwks["keys"][index] = {**jwks["keys"][index], **change}
        return jwks

    return make


def _private(ks: Keystore) -> dict[str, Any]:
    jwks = ks.public_jwks()
    jwks["keys"][1] = {**jwks["keys"][1], "d": ks.signing_key()["d"]}
    return jwks


def _two_primaries(ks: Keystore) -> dict[str, Any]:
    ks.add_key("sig")
    return {"keys": [{**k, "status": "primary"} for k in ks.public_jwks()["keys"]]}


def _duplicate(ks: Keystore) -> dict[str, Any]:
    keys = ks.public_jwks()["keys"]
    return {"keys": [*keys, keys[0]]}


@pytest.mark.parametrize(
    ("make", "field", "words"),
    [
        (_private, "keys.1.d", "private member 'd'"),
        (_with({"crv": "X25519"}, 1), "keys.1.crv", "a key for 'sig' must be OKP Ed25519"),
        (_with({"crv": "Ed25519"}, 0), "keys.0.crv", "a key for 'enc' must be OKP X25519"),
        (_with({"kty": "EC"}), "keys.0.kty", "kty must be 'OKP'"),
        (_with({"kid": "not-the-thumbprint"}), "keys.0.kid", "RFC 7638 thumbprint"),
        (_with({"use": "wrap"}), "keys.0.use", "'sig' or 'enc'"),
        (_with({"x": "AAAA"}), "keys.0.x", "not a valid X25519 public key"),
        (_with({"alg": "RSA-OAEP"}), "keys.0.alg", "alg must be ECDH-ES+A256KW"),
        (_with({"exp": 1_000_000}), "keys.0.exp", "expired"),
        (_two_primaries, "keys", "exactly one primary sig key"),
        (_duplicate, "keys", "twice"),
        (lambda ks: {"keys": []}, "keys", "1 to 20 keys"),
        (lambda ks: {"kty": "OKP"}, "keys", "JWK Set"),
    ],
)
async def test_bad_key_sets_are_refused_naming_the_problem(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path, make, field: str, words: str
) -> None:
    ks = keystore(tmp_path)
    body = make(ks)
    r = await api.put("/keys", json=body, headers=await auth(hub, "GM0518"))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["reason"] == "key_invalid" and problem["field"] == field
    assert words in problem["detail"]
    assert ks.signing_key()["d"] not in r.text  # a leaked private key is not echoed


async def test_only_tenants_register_and_a_non_object_is_422(hub: RunningHub, api: httpx.AsyncClient) -> None:
    operator = {"Authorization": f"Bearer {await hub.token('operator')}"}
    assert (await api.put("/keys", json={"keys": []}, headers=operator)).status_code == 403
    assert (await api.put("/keys", json={"keys": []})).status_code == 401
    r = await api.put("/keys", json=["not", "a", "set"], headers=await auth(hub, "GM0518"))
    assert r.status_code == 422
