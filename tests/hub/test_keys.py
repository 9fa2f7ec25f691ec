"""The key directory through the real API (ASGI), store and broker: register, refuse, publish,
announce."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from connectors.keystore import Keystore
from hub.api.app import create_app
from hub.store.models import AuditRecord
from schemas.key_proof import sign_rotation
from schemas.sealed import jwk_thumbprint
from tests.utils.hubs import RunningHub
from tests.utils.keys import forget_keys

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


def signed(ks: Keystore, jwks: dict[str, Any] | None = None, signer: int = 0) -> dict[str, Any]:
    """A key set with the rotation proof the connector sends (by its primary signing key)."""
    body = jwks if jwks is not None else ks.public_jwks()
    return {**body, "proof": sign_rotation(body, ks.signing_keys()[signer])}


def rotated_for(tenant: str, kids: set[str]):
    return lambda e: e.type == ROTATED and e.data["tenant"] == tenant and set(e.data["kids"]) == kids


async def test_register_publish_and_announce(hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path) -> None:
    await forget_keys(hub, "GM0957")  # a first registration: no keys yet
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
    await forget_keys(hub, "GM0307")
    headers = await auth(hub, "GM0307")
    ks = keystore(tmp_path)
    old = ks.primary_kid("enc")
    assert (await api.put("/keys", json=ks.public_jwks(), headers=headers)).status_code == 200
    new = ks.add_key("enc")
    r = await api.put("/keys", json=signed(ks), headers=headers)
    status = {k["kid"]: k["status"] for k in r.json()["keys"]}
    assert status[old] == "primary" and status[new] == "pending"
    ks.promote(new)
    r = await api.put("/keys", json=signed(ks), headers=headers)
    published = {k["kid"]: k for k in r.json()["keys"]}
    assert published[new]["status"] == "primary" and published[old]["status"] == "retired"
    assert "exp" in published[old]
    # leaving a key out withdraws it
    jwks = {"keys": [k for k in ks.public_jwks()["keys"] if k["kid"] != old]}
    r = await api.put("/keys", json=signed(ks, jwks), headers=headers)
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


# -- replacing keys: only a rotation signed by a current key, or the operator ------------------

REFUSED_ALERT = "nl.leerplicht.hub.key_replacement_refused"


async def _audit_outcomes(hub: RunningHub, activity: str) -> list[tuple[str, str, str | None]]:
    async with hub.db.session() as s:
        rows = await s.scalars(
            select(AuditRecord).where(AuditRecord.activity == activity).order_by(AuditRecord.seq)
        )
        return [(r.actor, r.outcome, r.sender) for r in rows]


async def test_a_new_key_set_without_a_proof_is_refused_and_the_tenant_alerted(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await forget_keys(hub, "GM0957")
    headers = await auth(hub, "GM0957")
    real, other = keystore(tmp_path, "real"), keystore(tmp_path, "other")
    assert (await api.put("/keys", json=real.public_jwks(), headers=headers)).status_code == 200
    await hub.drain("GM0957")
    real_kids = {k["kid"] for k in real.public_jwks()["keys"]}
    other_kids = sorted(k["kid"] for k in other.public_jwks()["keys"])

    r = await api.put("/keys", json=other.public_jwks(), headers=headers)
    assert r.status_code == 409, r.text
    assert r.json()["reason"] == "key_replacement_refused" and r.json()["field"] == "proof"
    assert "rotation proof" in r.json()["detail"]
    published = await api.get("/tenants/GM0957/keys", headers=headers)
    assert {k["kid"] for k in published.json()["keys"]} == real_kids  # nothing changed
    [alert] = await hub.receive("GM0957", lambda e: e.type == REFUSED_ALERT)
    assert alert.source == hub.settings.hub_source
    assert alert.data["presented_kids"] == other_kids and alert.data["reason"] == "proof_missing"
    assert set(alert.data["current_kids"]) == real_kids
    assert ("api:GM0957", "refused:key_replacement_refused", "GM0957") in await _audit_outcomes(
        hub, "register keys"
    )

    # a proof by the new keys themselves, or one made for another set, or an old one: refused
    bad_proofs = [
        signed(other),
        {**other.public_jwks(), "proof": signed(real)["proof"]},
        {**other.public_jwks(), "proof": sign_rotation(other.public_jwks(), real.signing_key(), now=1)},
        {**other.public_jwks(), "proof": "not-a-jws"},
    ]
    for body in bad_proofs:
        r = await api.put("/keys", json=body, headers=headers)
        assert r.status_code == 409 and r.json()["reason"] == "key_replacement_refused", r.text
        assert real.signing_key()["d"] not in r.text and other.signing_key()["d"] not in r.text
    alerts = await hub.receive("GM0957", lambda e: e.type == REFUSED_ALERT, count=len(bad_proofs))
    assert {a.data["reason"] for a in alerts} == {"proof_invalid"}
    published = await api.get("/tenants/GM0957/keys", headers=headers)
    assert {k["kid"] for k in published.json()["keys"]} == real_kids

    # the holder of the current key may move to entirely new keys (e.g. a new keystore)
    r = await api.put("/keys", json=signed(real, other.public_jwks()), headers=headers)
    assert r.status_code == 200, r.text
    assert sorted(k["kid"] for k in r.json()["keys"]) == other_kids


async def test_a_signing_key_promoted_before_the_hub_saw_it_rotates_with_the_old_one(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await forget_keys(hub, "GM0307")
    headers = await auth(hub, "GM0307")
    ks = keystore(tmp_path)
    old = ks.primary_kid("sig")
    assert (await api.put("/keys", json=ks.public_jwks(), headers=headers)).status_code == 200
    new = ks.add_key("sig")
    ks.promote(new)  # never registered as pending: the hub knows only the old key
    assert [k["kid"] for k in ks.signing_keys()] == [new, old]
    assert (await api.put("/keys", json=signed(ks), headers=headers)).status_code == 409
    r = await api.put("/keys", json=signed(ks, signer=1), headers=headers)
    assert r.status_code == 200, r.text
    assert {k["kid"]: k["status"] for k in r.json()["keys"] if k["use"] == "sig"} == {
        new: "primary",
        old: "retired",
    }


async def test_the_operator_replaces_a_tenants_keys_audited(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    lost, fresh = keystore(tmp_path, "lost"), keystore(tmp_path, "fresh")
    await forget_keys(hub, "GM0957")
    tenant = await auth(hub, "GM0957")
    assert (await api.put("/keys", json=lost.public_jwks(), headers=tenant)).status_code == 200
    # the tenant's token does not reach the operator's route
    r = await api.put("/tenants/GM0957/keys", json=fresh.public_jwks(), headers=tenant)
    assert r.status_code == 403
    operator = {"Authorization": f"Bearer {await hub.token('operator')}"}
    r = await api.put("/tenants/GM0957/keys", json=fresh.public_jwks(), headers=operator)
    assert r.status_code == 200, r.text
    assert {k["kid"] for k in r.json()["keys"]} == {k["kid"] for k in fresh.public_jwks()["keys"]}
    replaced = [a for a in await _audit_outcomes(hub, "replace keys") if a[2] == "GM0957"]
    assert replaced and replaced[-1][0].startswith("api:operator:") and replaced[-1][1] == "replaced"
    await hub.receive("GM0957", rotated_for("GM0957", {k["kid"] for k in fresh.public_jwks()["keys"]}))
    # the same again changes nothing, and is in the chain all the same
    again = await api.put("/tenants/GM0957/keys", json=fresh.public_jwks(), headers=operator)
    assert again.status_code == 200
    assert [a for a in await _audit_outcomes(hub, "replace keys") if a[2] == "GM0957"][-1][1] == "unchanged"
    bad = await api.put("/tenants/GM9999/keys", json=fresh.public_jwks(), headers=operator)
    assert bad.status_code == 404
    # the tenant's own connector carries on with the new keystore: its re-registration is a no-op
    assert (await api.put("/keys", json=fresh.public_jwks(), headers=tenant)).status_code == 200


async def _inbeeld(hub: RunningHub, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "INBEELD_LOG_FORMAT": "json",
        "INBEELD_DATABASE_URL": hub.settings.database_url,
        "INBEELD_VHOST": hub.settings.vhost,
    }
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "inbeeld"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_operator_cli_replaces_a_tenants_keys(hub: RunningHub, tmp_path: Path) -> None:
    fresh = keystore(tmp_path, "fresh")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(fresh.public_jwks()))
    code, out, err = await _inbeeld(hub, "tenant", "replace-keys", "GM0307", str(path))
    assert code == 0, err
    assert "GM0307: keys replaced" in out
    replaced = [a for a in await _audit_outcomes(hub, "replace keys") if a[2] == "GM0307"]
    assert replaced[-1][:2] == ("cli:operator", "replaced")
    await hub.receive("GM0307", rotated_for("GM0307", {k["kid"] for k in fresh.public_jwks()["keys"]}))
    # a file that is not a JWK Set: one line naming the problem, no traceback
    path.write_text("[" * 100_000)
    code, _, err = await _inbeeld(hub, "tenant", "replace-keys", "GM0307", str(path))
    assert code == 1 and "cannot read a JWK Set" in err and "Traceback" not in err
    path.write_text(json.dumps({"keys": [{**fresh.public_jwks()["keys"][0], "d": "secret"}]}))
    code, _, err = await _inbeeld(hub, "tenant", "replace-keys", "GM0307", str(path))
    assert code == 1 and "private member 'd'" in err and "Traceback" not in err
