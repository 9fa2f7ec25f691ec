"""Templates end to end through the real hub: Ingrado publishes a signed bundle to
`group:subscribers`, the hub expands it to the tenants following Ingrado and records the
catalogue, the municipalities' connectors keep every version and render letters from it."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from connectors.letters import shared_bundle_dir
from connectors.store import LocalStore
from connectors.templates import (
    PUBLISHED,
    SUBSCRIBERS,
    TemplateCatalogue,
    TemplateRefused,
    TemplateUnavailable,
    publish,
    withdraw,
)
from schemas.envelope import CloudEvent
from tests.connectors.letters.conftest import HEAD, VALUES, pdf_text
from tests.e2e.conftest import Party
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

MUNICIPALITIES = ("GM0518", "GM0599", "GM0307", "GM0957")
REJECTED = "nl.leerplicht.hub.rejected"


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        yield client


async def as_tenant(hub: RunningHub, code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await hub.token('tenant', code)}"}


def bundle_copy(
    tmp: Path,
    version: str = "1.0.0",
    *,
    template_id: str | None = None,
    source: str = "we-zijn-je-kwijt",
    **manifest: Any,
) -> Path:
    """A copy of a shared bundle under a fresh template id (the hub is shared by the session)."""
    template_id = template_id or f"test-{uuid.uuid4().hex[:10]}"
    folder = tmp / f"{template_id}-{version}-{uuid.uuid4().hex[:4]}"
    shutil.copytree(shared_bundle_dir() / source, folder)
    data = json.loads((folder / "manifest.json").read_text("utf-8"))
    data.update({"id": template_id, "version": version, **manifest})
    (folder / "manifest.json").write_text(json.dumps(data), "utf-8")
    return folder


def of(event_id: str):
    return lambda e: e.id == event_id


def rejection_of(event_id: str):
    return lambda e: e.type == REJECTED and e.data["event_id"] == event_id


@pytest.fixture
async def catalogues(
    parties: dict[str, Party], tmp_path: Path
) -> AsyncIterator[dict[str, TemplateCatalogue]]:
    stores = {
        c: await LocalStore.open(tmp_path / f"{c}.store.db", parties[c].keystore) for c in MUNICIPALITIES
    }
    yield {c: TemplateCatalogue(stores[c], parties[c].sealer) for c in MUNICIPALITIES}
    for store in stores.values():
        await store.close()


async def deliver(
    hub: RunningHub,
    catalogues: dict[str, TemplateCatalogue],
    sent: CloudEvent,
    codes: tuple[str, ...] = MUNICIPALITIES,
) -> None:
    for code in codes:
        [got] = await hub.receive(code, of(sent.id))
        outcome = await catalogues[code].handle(got)
        assert outcome.template_id == sent.subject.split(":")[0]


# -- fan-out ----------------------------------------------------------------------------------


async def test_publish_reaches_each_subscriber_once_and_not_the_unsubscribed(
    hub: RunningHub, parties: dict[str, Party], api: httpx.AsyncClient, tmp_path: Path
) -> None:
    ingrado = parties["ingrado"]
    amersfoort, rotterdam = await as_tenant(hub, "GM0307"), await as_tenant(hub, "GM0599")
    r = await api.delete("/subscriptions/ingrado", headers=amersfoort)
    assert r.status_code == 200 and r.json()["publishers"] == []
    # Rotterdam follows everyone as well as Ingrado: it still gets the template once.
    assert (await api.put("/subscriptions/*", headers=rotterdam)).json()["publishers"] == ["*", "ingrado"]
    try:
        who = (await api.get("/subscribers", headers=await as_tenant(hub, "ingrado"))).json()
        assert who == {"publisher": "ingrado", "subscribers": ["GM0518", "GM0599", "GM0957"]}
        sent = await publish(ingrado.connector, ingrado.sealer, bundle_copy(tmp_path))
        assert sent.recipients == [SUBSCRIBERS] and sent.type == PUBLISHED
        for code in ("GM0518", "GM0599", "GM0957"):
            [got] = await hub.receive(code, of(sent.id))
            assert got.recipients == [SUBSCRIBERS]  # as signed: the envelope binding holds
            payload = await parties[code].sealer.open(got)
            assert payload.template_id == sent.subject.split(":")[0]
            assert [e for e in await hub.drain(code, quiet=0.4) if e.id == sent.id] == []
        assert [e for e in await hub.drain("GM0307", quiet=0.6) if e.id == sent.id] == []
        assert [e for e in await hub.drain("ingrado", quiet=0.2) if e.type == REJECTED] == []
    finally:
        await api.put("/subscriptions/ingrado", headers=amersfoort)
        await api.delete("/subscriptions/*", headers=rotterdam)
    assert (await api.get("/subscriptions", headers=amersfoort)).json()["publishers"] == ["ingrado"]


async def test_every_version_is_kept_and_a_withdrawal_retires_one(
    hub: RunningHub,
    parties: dict[str, Party],
    catalogues: dict[str, TemplateCatalogue],
    api: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    ingrado = parties["ingrado"]
    template_id = f"test-{uuid.uuid4().hex[:10]}"
    first = await publish(
        ingrado.connector, ingrado.sealer, bundle_copy(tmp_path, "1.0.0", template_id=template_id)
    )
    await deliver(hub, catalogues, first)
    second = await publish(
        ingrado.connector, ingrado.sealer, bundle_copy(tmp_path, "1.1.0", template_id=template_id)
    )
    await deliver(hub, catalogues, second)
    for code in MUNICIPALITIES:
        entries = await catalogues[code].entries(template_id)
        assert [(e.version, e.status) for e in entries] == [("1.1.0", "active"), ("1.0.0", "active")]
    assert (await catalogues["GM0518"].bundle(template_id)).version == "1.1.0"

    gone = await withdraw(ingrado.connector, ingrado.sealer, template_id, "1.1.0", "fout in de Poolse tekst")
    await deliver(hub, catalogues, gone)
    for code in MUNICIPALITIES:
        entries = {e.version: e for e in await catalogues[code].entries(template_id)}
        assert entries["1.1.0"].status == "retired" and entries["1.0.0"].status == "active"
        assert entries["1.1.0"].withdraw_reason == "fout in de Poolse tekst"
    den_haag = catalogues["GM0518"]
    assert (await den_haag.bundle(template_id)).version == "1.0.0"
    with pytest.raises(TemplateUnavailable, match="withdrawn"):
        await den_haag.render_letter(
            template_id, version="1.1.0", lang="nl", values=VALUES["we-zijn-je-kwijt"], letterhead=HEAD
        )
    rendered = await den_haag.render_letter(
        template_id, lang="nl", values=VALUES["we-zijn-je-kwijt"], letterhead=HEAD, fmt="html"
    )
    assert rendered.ref == f"{template_id}@1.0.0"

    listed = (
        await api.get("/templates", params={"publisher": "ingrado"}, headers=await as_tenant(hub, "GM0957"))
    ).json()
    mine = {e["version"]: e for e in listed if e["template_id"] == template_id}
    assert set(mine) == {"1.0.0", "1.1.0"}
    assert mine["1.1.0"]["withdrawn_at"] is not None and mine["1.0.0"]["withdrawn_at"] is None
    assert mine["1.0.0"]["languages"] == ["ar", "bg", "en", "nl", "pl", "tr"]
    assert "body" not in json.dumps(mine)  # metadata only
    active = (
        await api.get(
            "/templates", params={"include_withdrawn": "false"}, headers=await as_tenant(hub, "GM0518")
        )
    ).json()
    assert f"{template_id}@1.1.0" not in {e["ref"] for e in active}


# -- refusals ---------------------------------------------------------------------------------


async def test_a_bundle_in_another_publishers_name_is_refused(
    hub: RunningHub, parties: dict[str, Party], catalogues: dict[str, TemplateCatalogue], tmp_path: Path
) -> None:
    rotterdam = parties["GM0599"]
    folder = bundle_copy(tmp_path)  # names ingrado as publisher
    with pytest.raises(TemplateRefused, match="publisher"):  # the SDK will not send it
        await publish(rotterdam.connector, rotterdam.sealer, folder)
    # Signed by Rotterdam with Rotterdam's key, claiming to be Ingrado's:
    data = json.loads((folder / "manifest.json").read_text("utf-8"))
    from connectors.letters import load_bundle

    bundle = load_bundle(folder).model_dump(mode="json")
    event = rotterdam.connector.event(PUBLISHED, bundle, [SUBSCRIBERS], subject=f"{data['id']}:1.0.0")
    signed = await rotterdam.sealer.seal(event)
    # the hub refuses it ...
    await rotterdam.connector.publish(signed)
    [rejection] = await hub.receive("GM0599", rejection_of(signed.id))
    assert rejection.data["reason"] == "not_authorised" and rejection.data["field"] == "data.publisher"
    # ... and so does a receiving connector, should it ever get it (the hub is not trusted for it)
    with pytest.raises(TemplateRefused, match="signed and sent by GM0599"):
        await catalogues["GM0518"].handle(signed.with_sequence(1))
    assert await catalogues["GM0518"].entries(data["id"]) == []


async def test_republishing_a_version_with_other_content_is_an_invalid_transition(
    hub: RunningHub,
    parties: dict[str, Party],
    catalogues: dict[str, TemplateCatalogue],
    api: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    ingrado = parties["ingrado"]
    template_id = f"test-{uuid.uuid4().hex[:10]}"
    first = await publish(ingrado.connector, ingrado.sealer, bundle_copy(tmp_path, template_id=template_id))
    await deliver(hub, catalogues, first, ("GM0518",))

    changed = await publish(
        ingrado.connector,
        ingrado.sealer,
        bundle_copy(tmp_path, template_id=template_id, title="Een andere titel"),
    )
    [rejection] = await hub.receive("ingrado", rejection_of(changed.id))
    assert rejection.data["reason"] == "invalid_transition" and rejection.data["field"] == "data.version"
    assert [e for e in await hub.drain("GM0518", quiet=0.5) if e.id == changed.id] == []
    # the connector would refuse it too, and keeps the first
    with pytest.raises(TemplateRefused, match="other content"):
        await catalogues["GM0518"].handle(changed.with_sequence(1))

    # the same content again is a resend, routed; the connector sees a duplicate
    again = await publish(ingrado.connector, ingrado.sealer, bundle_copy(tmp_path, template_id=template_id))
    [got] = await hub.receive("GM0518", of(again.id))
    assert (await catalogues["GM0518"].handle(got)).kind == "duplicate"

    # someone else may not take the id over, nor withdraw it
    rotterdam = parties["GM0599"]
    theirs = await publish(
        rotterdam.connector,
        rotterdam.sealer,
        bundle_copy(tmp_path, "2.0.0", template_id=template_id, publisher="GM0599"),
    )
    [rejection] = await hub.receive("GM0599", rejection_of(theirs.id))
    assert rejection.data["reason"] == "not_authorised"
    steal = await withdraw(rotterdam.connector, rotterdam.sealer, template_id, "1.0.0", "mijn sjabloon")
    [rejection] = await hub.receive("GM0599", rejection_of(steal.id))
    assert rejection.data["reason"] == "not_authorised"

    unknown = await withdraw(ingrado.connector, ingrado.sealer, template_id, "9.9.9", "bestaat niet")
    [rejection] = await hub.receive("ingrado", rejection_of(unknown.id))
    assert rejection.data["reason"] == "invalid_transition"

    done = await withdraw(ingrado.connector, ingrado.sealer, template_id, "1.0.0", "vervangen")
    await hub.receive("GM0518", of(done.id))
    twice = await withdraw(ingrado.connector, ingrado.sealer, template_id, "1.0.0", "nog eens")
    [rejection] = await hub.receive("ingrado", rejection_of(twice.id))
    assert rejection.data["reason"] == "invalid_transition"
    revived = await publish(ingrado.connector, ingrado.sealer, bundle_copy(tmp_path, template_id=template_id))
    [rejection] = await hub.receive("ingrado", rejection_of(revived.id))
    assert rejection.data["reason"] == "invalid_transition" and "withdrawn" in rejection.data["message"]


# -- rendering --------------------------------------------------------------------------------


async def test_letters_render_from_the_received_catalogue(
    hub: RunningHub, parties: dict[str, Party], catalogues: dict[str, TemplateCatalogue], tmp_path: Path
) -> None:
    ingrado = parties["ingrado"]
    template_id = f"test-{uuid.uuid4().hex[:10]}"
    sent = await publish(ingrado.connector, ingrado.sealer, bundle_copy(tmp_path, template_id=template_id))
    await deliver(hub, catalogues, sent, ("GM0518",))
    den_haag = catalogues["GM0518"]
    values = VALUES["we-zijn-je-kwijt"]
    for lang in ("nl", "pl", "ar"):
        rendered = await den_haag.render_letter(
            template_id, lang=lang, values=values, letterhead=HEAD, bilingual=lang == "ar"
        )
        assert rendered.fmt == "pdf" and rendered.content.startswith(b"%PDF")
        assert rendered.ref == f"{template_id}@1.0.0"
        text = pdf_text(rendered.content)
        for value in ("2026-0417", "070 353 5454", "leerplicht@denhaag.nl"):
            assert value in text, (lang, value)
        assert rendered.ref in text  # the footer names template_id@version
    html = await den_haag.render_letter(template_id, lang="nl", values=values, letterhead=HEAD, fmt="html")
    assert "Jan de Vries" in html.content.decode()
    with pytest.raises(TemplateUnavailable):
        await catalogues["GM0599"].render_letter(template_id, lang="nl", values=values, letterhead=HEAD)


# -- API --------------------------------------------------------------------------------------


async def test_subscriptions_api_per_tenant(hub: RunningHub, api: httpx.AsyncClient) -> None:
    for code in MUNICIPALITIES:
        r = await api.get("/subscriptions", headers=await as_tenant(hub, code))
        assert r.json() == {"tenant": code, "publishers": ["ingrado"]}
    ingrado = await as_tenant(hub, "ingrado")
    assert (await api.get("/subscriptions", headers=ingrado)).json()["publishers"] == []
    den_haag = await as_tenant(hub, "GM0518")
    assert (await api.get("/subscriptions", params={"tenant": "GM0599"}, headers=den_haag)).status_code == 404
    operator = {"Authorization": f"Bearer {await hub.token('operator')}"}
    r = await api.get("/subscriptions", params={"tenant": "GM0599"}, headers=operator)
    assert r.json() == {"tenant": "GM0599", "publishers": ["ingrado"]}
    assert (await api.put("/subscriptions/ingrado", headers=operator)).status_code == 403

    r = await api.put("/subscriptions/GM0599", headers=den_haag)
    assert r.json()["publishers"] == ["GM0599", "ingrado"]
    assert (await api.put("/subscriptions/GM0599", headers=den_haag)).status_code == 200  # idempotent
    r = await api.get("/subscribers", headers=await as_tenant(hub, "GM0599"))
    assert r.json()["subscribers"] == ["GM0518"]
    assert (await api.delete("/subscriptions/GM0599", headers=den_haag)).json()["publishers"] == ["ingrado"]
    assert (await api.delete("/subscriptions/GM0599", headers=den_haag)).status_code == 404
    assert (await api.put("/subscriptions/GM9999", headers=den_haag)).status_code == 404
    assert (await api.put("/subscriptions/GM0518", headers=den_haag)).status_code == 403  # itself
    assert (await api.put("/subscriptions/Not%20A%20Code", headers=den_haag)).status_code == 422
    assert (await api.get("/templates")).status_code == 401


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda b: b["languages"]["tr"].update(body="Merhaba ((bsn)).\n"), "undeclared_placeholder"),
        (lambda b: b["languages"]["ar"].update(body="مرحبًا ((pupil_name\n"), "template_syntax"),
        (lambda b: b["languages"]["nl"].update(subject="Kwijt \u202egnidlem"), "template_syntax"),
        (lambda b: b.update(title="We zijn je kwijt \u202efdp.exe"), "bundle_invalid"),
    ],
    ids=["undeclared-placeholder", "grammar", "bidi-override", "title"],
)
async def test_a_received_bundle_that_fails_the_publishers_checks_is_kept_aside(
    hub: RunningHub,
    parties: dict[str, Party],
    catalogues: dict[str, TemplateCatalogue],
    tmp_path: Path,
    edit: Any,
    reason: str,
) -> None:
    """A publisher whose tooling skipped the checks sends a broken 1.0.1: the subscriber keeps it
    aside as refused, with the reason, and 1.0.0 stays the version letters are made from."""
    ingrado = parties["ingrado"]
    template_id = f"test-{uuid.uuid4().hex[:10]}"
    good = await publish(ingrado.connector, ingrado.sealer, bundle_copy(tmp_path, template_id=template_id))
    await deliver(hub, catalogues, good, ("GM0518",))
    from connectors.letters import load_bundle

    broken = load_bundle(bundle_copy(tmp_path, "1.0.1", template_id=template_id)).model_dump(mode="json")
    edit(broken)
    event = ingrado.connector.event(PUBLISHED, broken, [SUBSCRIBERS], subject=f"{template_id}:1.0.1")
    sent = await ingrado.connector.publish(await ingrado.sealer.seal(event))
    [got] = await hub.receive("GM0518", of(sent.id))
    den_haag = catalogues["GM0518"]
    outcome = await den_haag.handle(got)
    assert outcome.kind == "refused" and outcome.detail is not None and outcome.detail.startswith(reason)
    assert await den_haag.handle(got) == outcome  # the same answer when it comes again

    listed = {e.version: e for e in await den_haag.entries(template_id)}
    assert listed["1.0.1"].status == "refused" and listed["1.0.1"].refused_reason == outcome.detail
    assert listed["1.0.0"].status == "active"
    assert (await den_haag.bundle(template_id)).version == "1.0.0"  # the last good one
    letter = await den_haag.render_letter(
        template_id, lang="ar", values=VALUES["we-zijn-je-kwijt"], letterhead=HEAD
    )
    assert letter.ref == f"{template_id}@1.0.0"
    with pytest.raises(TemplateUnavailable, match="refused"):
        await den_haag.bundle(template_id, "1.0.1")
