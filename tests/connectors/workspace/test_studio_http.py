"""The template studio over HTTP with a real store, keystore and catalogue, but no hub or broker:
who gets in, the checks at their line, the live preview right-to-left, and clear pages for bad
input (a forged form, a form too large, an invalid or old version, a broker out of reach)."""

from __future__ import annotations

import html as html_lib
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors import accounts
from connectors.config import parse_config
from connectors.keystore import Keystore
from connectors.letters import load_bundle, shared_bundle_dir
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.workspace import create_workspace
from connectors.workspace.i18n import CATALOGUE
from connectors.workspace.studio import MAX_STUDIO_FORM
from schemas.events import TemplatePublished

PASSWORD = "een lang en geheim wachtwoord"
TENANT = "GM0599"
TEMPLATE = "we-zijn-je-kwijt"


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[ConnectorServices]:
    config = parse_config(
        {
            "tenant": TENANT,
            "broker": {"url": "amqp://127.0.0.1:5672/nothing", "username": "nobody"},
            "store": {"path": "connector.db"},
        },
        tmp_path,
    )
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase="studio test", scrypt_n=2**14)
    store = await LocalStore.open(config.store.path, keystore)
    try:
        services = ConnectorServices(config, keystore=keystore, store=store)
        own = tmp_path / "bundle"
        shutil.copytree(shared_bundle_dir() / TEMPLATE, own)
        manifest = json.loads((own / "manifest.json").read_text("utf-8"))
        (own / "manifest.json").write_text(json.dumps({**manifest, "publisher": TENANT}), "utf-8")
        await services.catalogue().import_bundle(load_bundle(own))
        await services.catalogue().import_bundle(load_bundle(shared_bundle_dir() / "wij-zijn-langs-geweest"))
        for name, role in (("erik", "editor"), ("olga", "officer"), ("victor", "viewer"), ("ada", "admin")):
            await accounts.add(store, name, role, PASSWORD)
        yield services
    finally:
        await store.close()


@pytest.fixture
async def web(services: ConnectorServices) -> AsyncIterator[httpx.AsyncClient]:
    app = create_workspace(services, secret="a test secret of the workspace")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://workspace") as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def _log_in(web: httpx.AsyncClient, name: str) -> str:
    page = await web.get("/login")
    r = await web.post("/login", data={"csrf": _csrf(page.text), "name": name, "password": PASSWORD})
    assert r.status_code == 303, r.text
    return _csrf((await web.get("/")).text)


def _form(html: str) -> dict[str, str]:
    """The edit page's fields as the browser would send them."""
    fields = {"csrf": _csrf(html), "preview_lang": "nl"}
    for name, value in re.findall(r'<input [^>]*name="(version|title|subject_\w+)" value="([^"]*)"', html):
        fields[name] = value
    for name, value in re.findall(r'<textarea [^>]*name="(body_\w+)"[^>]*>(.*?)</textarea>', html, re.S):
        fields[name] = value
    return {k: html_lib.unescape(v) for k, v in fields.items()}


async def test_only_editors_and_admins_get_into_the_studio(web: httpx.AsyncClient) -> None:
    for name in ("olga", "victor"):
        csrf = await _log_in(web, name)
        assert "Sjablonenstudio" not in (await web.get("/")).text  # no menu item either
        for path in ("/studio", f"/studio/{TEMPLATE}"):
            r = await web.get(path)
            assert r.status_code == 403 and "Uw rol geeft geen toegang" in r.text, (name, path)
        for action in ("preview", "publish", "withdraw"):
            r = await web.post(f"/studio/{TEMPLATE}/{action}", data={"csrf": csrf, "version": "1.1.0"})
            assert r.status_code == 403, (name, action)
        await web.post("/logout", data={"csrf": csrf})
    r = await web.get("/studio")
    assert r.status_code == 303 and r.headers["location"].endswith("/login")
    for name in ("erik", "ada"):
        await _log_in(web, name)
        assert 'href="/studio"' in (await web.get("/")).text
        r = await web.get("/studio")
        assert r.status_code == 200 and TEMPLATE in r.text and "1.0.0 (in gebruik)" in r.text
        assert 'href="/studio" aria-current="page">Sjablonenstudio</a>' in r.text
        r = await web.get(f"/studio/{TEMPLATE}?lang=en")
        assert r.status_code == 200 and "Edit template" in r.text and "Check and publish" in r.text
        await web.get("/studio?lang=nl")
        await web.post("/logout", data={"csrf": _csrf(r.text)})


async def test_the_editor_sees_the_languages_side_by_side_and_the_placeholders(
    web: httpx.AsyncClient,
) -> None:
    await _log_in(web, "erik")
    r = await web.get("/studio")
    assert f'href="/studio/{TEMPLATE}"' in r.text
    assert 'href="/studio/wij-zijn-langs-geweest"' not in r.text  # ingrado's, not this tenant's
    assert "Van een andere uitgever" in r.text
    r = await web.get(f"/studio/{TEMPLATE}")
    assert r.status_code == 200
    assert re.search(r'<textarea [^>]*name="body_ar"[^>]*lang="ar" dir="rtl"', r.text)
    assert re.search(r'<textarea [^>]*name="body_nl"[^>]*lang="nl" dir="ltr"', r.text)
    assert "((pupil_name))" in r.text and "Sam de Boer" in r.text  # a placeholder and its sample
    assert 'value="1.1.0"' in r.text  # the next version is proposed
    assert '<section class="letter" lang="nl" dir="ltr">' in r.text  # the first preview, Dutch
    assert "Sam de Boer" in r.text.split('id="preview"')[1]
    r = await web.get("/studio/wij-zijn-langs-geweest")
    assert r.status_code == 400 and "published by ingrado" in r.text
    r = await web.get("/studio/no-such-template")
    assert r.status_code == 404


async def test_the_checks_show_at_their_line_and_the_preview_is_right_to_left(web: httpx.AsyncClient) -> None:
    await _log_in(web, "erik")
    form = _form((await web.get(f"/studio/{TEMPLATE}")).text)
    body = form["body_ar"].split("\n")
    body[2] = body[2] + " ((foo))"
    r = await web.post(
        f"/studio/{TEMPLATE}/preview",
        data={**form, "body_ar": "\n".join(body), "preview_lang": "ar"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 200
    problems = re.search(
        r'<ul class="studio-problems" id="problems-ar-body" hx-swap-oob="true">(.*?)</ul>', r.text, re.S
    )
    assert problems and "regel 3: invulveld ((foo)) is niet gedeclareerd in het manifest" in problems[1]
    assert "set-cookie" in r.headers  # typing with the live preview keeps the session alive
    empty = re.search(r'id="problems-nl-body" hx-swap-oob="true">(.*?)</ul>', r.text, re.S)
    assert empty and "<li" not in empty[1]
    assert "Geen voorbeeld" in r.text and 'dir="rtl"' not in r.text

    r = await web.post(
        f"/studio/{TEMPLATE}/preview",
        data={**form, "body_ar": form["body_ar"] + "\nنص جديد.", "preview_lang": "ar", "bilingual": "1"},
        headers={"HX-Request": "true"},
    )
    assert '<section class="letter" lang="nl" dir="ltr">' in r.text
    assert '<section class="letter" lang="ar" dir="rtl">' in r.text
    assert "نص جديد." in r.text and "utrecht-form-field-error-message" not in r.text

    r = await web.post(f"/studio/{TEMPLATE}/publish", data={**form, "body_ar": "\n".join(body)})
    assert r.status_code == 422 and "Niet gepubliceerd" in r.text
    assert "regel 3: invulveld ((foo)) is niet gedeclareerd" in r.text
    assert "((foo))" in r.text.split('name="body_ar"')[1].split("</textarea>")[0]  # the text is kept


async def test_bad_input_gets_a_clear_page(web: httpx.AsyncClient) -> None:
    await _log_in(web, "erik")
    form = _form((await web.get(f"/studio/{TEMPLATE}")).text)
    r = await web.post(f"/studio/{TEMPLATE}/publish", data={**form, "csrf": "forged"})
    assert r.status_code == 403 and "Het formulier is verlopen" in r.text
    r = await web.post(f"/studio/{TEMPLATE}/publish", data={**form, "version": "1.1"})
    assert r.status_code == 422 and "de versie is geen geldige versie" in r.text
    r = await web.post(
        f"/studio/{TEMPLATE}/publish", data={**form, "version": "x", "body_nl": form["body_nl"] + "((bar))"}
    )  # a text problem too: the version's is still said
    assert r.status_code == 422 and "de versie is geen geldige versie" in r.text
    assert "invulveld ((bar)) is niet gedeclareerd" in r.text
    r = await web.post(f"/studio/{TEMPLATE}/publish", data={**form, "version": "1.0.0"})
    assert r.status_code == 422 and "de versie moet nieuwer zijn dan 1.0.0" in r.text
    r = await web.post(f"/studio/{TEMPLATE}/publish", data={**form, "body_nl": "x" * (MAX_STUDIO_FORM + 1)})
    assert r.status_code == 413 and "Het formulier is te groot." in r.text
    r = await web.post(f"/studio/{TEMPLATE}/publish", data={**form, **{f"extra{i}": "x" for i in range(50)}})
    assert r.status_code == 400 and "too many form fields" in r.text
    r = await web.get("/studio/" + "X" * 150)
    assert r.status_code == 400 and "not a template id" in r.text
    r = await web.post(f"/studio/{TEMPLATE}/withdraw", data={"csrf": form["csrf"], "version": "1.0.0"})
    assert r.status_code == 400 and "the only usable version" in r.text
    # A good version, but no broker to send it through: nothing is published or kept.
    r = await web.post(f"/studio/{TEMPLATE}/publish", data=form)
    assert r.status_code == 503 and "er is niets verstuurd" in r.text
    listing = (await web.get("/studio")).text
    assert "1.1.0" not in listing
    for page in (r.text, listing):
        assert "Traceback" not in page


def test_every_key_the_studio_pages_use_is_in_both_catalogues() -> None:
    used: set[str] = set()
    for template in (Path(__file__).parents[3] / "connectors/workspace/templates/studio").glob("*.html"):
        used |= set(re.findall(r"""\bt\(["']([a-z_.0-9]+)["']""", template.read_text()))
    used = {k for k in used if not k.endswith(".")}
    assert {"studio.title", "studio.publish", "studio.preview"} <= used
    for lang in ("nl", "en"):
        assert used <= set(CATALOGUE[lang]), used - set(CATALOGUE[lang])
        # keys made in the templates: "studio.lang." + lang, "studio.status." + status, ...
        for made in ("lang.nl", "lang.ar", "lang.bg", "status.active", "status.retired", "status.refused"):
            assert f"studio.{made}" in CATALOGUE[lang]
        for done in ("published", "withdrawn"):
            assert f"studio.done.{done}" in CATALOGUE[lang]


async def test_an_editor_acts_on_no_transfer(services: ConnectorServices) -> None:
    assert services.store is not None
    for name, edits, acts in (
        ("erik", True, False),
        ("ada", True, False),
        ("olga", False, True),
        ("victor", False, False),
    ):
        account = await accounts.get(services.store, name)
        assert account is not None
        assert (account.may_edit_templates, account.may_act) == (edits, acts), name


async def test_a_new_version_from_a_publisher_shows_its_changes(
    web: httpx.AsyncClient, services: ConnectorServices
) -> None:
    received = load_bundle(shared_bundle_dir() / "wij-zijn-langs-geweest").model_dump(mode="json")
    nl = received["languages"]["nl"]
    old_line = nl["body"].split("\n")[2]
    assert old_line.strip()
    newer = {
        **received,
        "version": "1.1.0",
        "languages": {
            **received["languages"],
            "nl": {**nl, "body": nl["body"].replace(old_line, "Een nieuwe zin.")},
        },
    }
    await services.catalogue().import_bundle(TemplatePublished.model_validate(newer))
    await _log_in(web, "erik")
    r = await web.get("/studio")
    assert 'href="/studio/wij-zijn-langs-geweest/diff"' in r.text
    assert f'href="/studio/{TEMPLATE}/diff"' not in r.text  # one version: nothing to compare
    r = await web.get("/studio/wij-zijn-langs-geweest/diff")
    assert r.status_code == 200 and "Wat versie 1.1.0 veranderde tegenover versie 1.0.0" in r.text
    assert '<ins dir="auto">+Een nieuwe zin.</ins>' in r.text
    assert f'<del dir="auto">-{html_lib.escape(old_line, quote=False)}</del>' in r.text
    r = await web.get(f"/studio/{TEMPLATE}/diff")
    assert r.status_code == 200 and "the only usable version held" in r.text
    r = await web.get("/studio/wij-zijn-langs-geweest/diff?from=<script>")
    assert r.status_code == 400 and "not a version" in r.text
