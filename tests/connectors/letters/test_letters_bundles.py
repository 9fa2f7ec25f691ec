from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from connectors.letters import (
    BundleInvalid,
    TemplateSyntaxError,
    TemplateTooLarge,
    UndeclaredPlaceholder,
    bundle_diff,
    load_bundle,
    render_pdf,
    sample_values,
    shared_bundle_dir,
)
from connectors.letters.compose import parse_language
from schemas.events import TemplatePublished, spec_for
from schemas.validation import validate_payload
from tests.connectors.letters.conftest import HEAD, LANGS, TEMPLATES, pdf_text


@pytest.mark.parametrize("template_id", TEMPLATES)
def test_shared_bundle_is_a_valid_template_published_payload(template_id: str) -> None:
    bundle = load_bundle(shared_bundle_dir() / template_id)
    assert isinstance(bundle, TemplatePublished)
    assert bundle.template_id == template_id
    assert bundle.publisher == "ingrado"
    assert sorted(bundle.languages) == sorted(LANGS)
    assert bundle.languages["ar"].direction == "rtl"
    # Round-trips through the contract's own validation, as the hub will do.
    spec = spec_for("nl.leerplicht.template.published")
    again = validate_payload(spec.type, bundle.model_dump(mode="json"))
    assert again == bundle


@pytest.mark.parametrize("template_id", TEMPLATES)
def test_every_language_uses_the_same_placeholders(template_id: str) -> None:
    bundle = load_bundle(shared_bundle_dir() / template_id)
    names = {lang: parse_language(bundle, lang).names for lang in bundle.languages}
    assert len(set(names.values())) == 1, names
    assert names["nl"] == {p.name for p in bundle.placeholders}


def _copy(tmp_path: Path, template_id: str = "we-zijn-je-kwijt") -> Path:
    dst = tmp_path / template_id
    shutil.copytree(shared_bundle_dir() / template_id, dst)
    return dst


def test_undeclared_placeholder_in_a_file_is_named(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "tr.md").write_text("subject: Merhaba\n\nMerhaba ((bsn)).\n", encoding="utf-8")
    with pytest.raises(UndeclaredPlaceholder, match=r"\(\(bsn\)\)") as e:
        load_bundle(folder)
    assert e.value.field == "bsn"
    assert "(tr)" in e.value.message


def test_manifest_errors_are_reported(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["languages"]["ar"]["direction"] = "ltr"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleInvalid, match="ar is written rtl"):
        load_bundle(folder)
    manifest["languages"]["ar"]["direction"] = "rtl"
    manifest["script"] = "x"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleInvalid, match="script"):
        load_bundle(folder)


def test_a_title_that_reorders_text_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["title"] = "We zijn je kwijt \u202efdp.exe"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleInvalid, match="title"):
        load_bundle(folder)


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "pl.md").write_text("subject: x\n\n" + "a" * (70 * 1024), encoding="utf-8")
    with pytest.raises(TemplateTooLarge, match=r"pl\.md"):
        load_bundle(folder)


def test_missing_subject_line(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "en.md").write_text("Dear ((pupil_name)),\n", encoding="utf-8")
    with pytest.raises(TemplateSyntaxError, match="subject"):
        load_bundle(folder)


@pytest.mark.parametrize("template_id", TEMPLATES)
def test_shared_bundles_preview_every_language_from_their_samples(template_id: str) -> None:
    bundle = load_bundle(shared_bundle_dir() / template_id)
    samples = sample_values(bundle.placeholders)
    assert set(samples) == {p.name for p in bundle.placeholders}  # a preview fills everything
    for lang in bundle.languages:
        text = pdf_text(render_pdf(bundle, lang, samples, HEAD, bilingual=lang != "nl"))
        assert "2026-0001" in text, lang  # the sample case number, in every language


@pytest.mark.parametrize(
    ("name", "sample", "says"),
    [
        ("respond_before", "morgen", "must be a date"),
        ("contact_email", "not an address", "contact_email"),
        ("case_number", "2026 0417", "letters, digits"),
    ],
)
def test_a_sample_that_is_no_value_of_its_type_is_refused(
    tmp_path: Path, name: str, sample: str, says: str
) -> None:
    folder = _copy(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    for p in manifest["placeholders"]:
        if p["name"] == name:
            p["sample"] = sample
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    with pytest.raises(BundleInvalid, match="sample") as e:
        load_bundle(folder)
    assert says in e.value.message and e.value.field == name


def test_the_diff_of_two_versions_names_what_changed(tmp_path: Path) -> None:
    old = load_bundle(shared_bundle_dir() / "we-zijn-je-kwijt")
    folder = _copy(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = "1.1.0"
    for p in manifest["placeholders"]:
        if p["name"] == "school_name":
            p["description"] = "De school van de leerling"
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    nl = (folder / "nl.md").read_text(encoding="utf-8")
    (folder / "nl.md").write_text(nl.replace("We zijn je kwijt. ", "We missen je. "), encoding="utf-8")
    new = load_bundle(folder)
    diff = bundle_diff(old, new)
    assert "--- we-zijn-je-kwijt@1.0.0/placeholders" in diff
    assert "-((school_name)) text, optional: School die de leerling niet meer bereikt" in diff
    assert "+((school_name)) text, optional: De school van de leerling" in diff
    assert "+++ we-zijn-je-kwijt@1.1.0/nl.md" in diff
    assert re.search(r"^\+We missen je\. ", diff, flags=re.M)
    assert "/en.md" not in diff and "/title" not in diff  # unchanged parts are not shown
    assert bundle_diff(old, old) == ""
