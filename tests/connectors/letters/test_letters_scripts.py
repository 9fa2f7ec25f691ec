"""Names in the scripts families in the Netherlands write them in: printed as written in PDF and
HTML, or refused with the field and the script named — never printed with a letter missing."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tomllib
from datetime import date
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

from connectors.letters import render_html, render_pdf
from connectors.letters.errors import UnprintableCharacter
from connectors.letters.fonts import FONT_FILES
from schemas.events import TemplatePublished
from tests.connectors.letters.conftest import BIDI_MARKS, HEAD, VALUES, pdf_text, poppler_text

TEMPLATE = "we-zijn-je-kwijt"
# One name per script; each needs a font the letters' own faces (PT Sans, Plex Arabic) lack,
# except the Cyrillic and Arabic ones, which prove the main faces still serve their scripts.
NAMES = {
    "Latin (Vietnamese)": "Nguyễn Thị Ánh Tuyết",
    "Greek": "Γιώργος Παπαδόπουλος",
    "Cyrillic": "Пётр Иванов",
    "Armenian": "Արամ Ղազարյան",
    "Georgian": "ნინო ბერიძე",
    "Hebrew": "נועה כהן",
    "Arabic": "محمد العلي",
    "Ethiopic (Tigrinya)": "ዮሃንስ ተስፋይ",
    "Devanagari": "नेहा राम",
    "Thai": "สมชาย ใจดี",
}
RIGHT_TO_LEFT = {"Hebrew", "Arabic"}
ISOLATES = re.compile("[\u2066-\u2069]")


def _render(bundles: dict[str, TemplatePublished], name: str) -> bytes:
    values = {**VALUES[TEMPLATE], "pupil_name": name}
    return render_pdf(bundles[TEMPLATE], "nl", values, HEAD, letter_date=date(2026, 4, 17))


@pytest.mark.parametrize("script", NAMES)
def test_a_name_prints_in_the_pdf_as_written(bundles: dict[str, TemplatePublished], script: str) -> None:
    name = NAMES[script]
    text = ISOLATES.sub("", pdf_text(_render(bundles, name)))
    [line] = [x for x in text.splitlines() if x.startswith("Beste ")]
    printed = line.removeprefix("Beste ").replace(",", "")
    if script in RIGHT_TO_LEFT:
        # pypdf reads right-to-left words in the order they are drawn: compare words.
        assert sorted(printed.split()) == sorted(name.split())
    else:
        assert printed == name


@pytest.mark.parametrize("script", NAMES)
def test_a_name_reads_back_as_written_with_poppler(
    bundles: dict[str, TemplatePublished], script: str
) -> None:
    text = BIDI_MARKS.sub("", poppler_text(_render(bundles, NAMES[script])))
    assert f"Beste {NAMES[script]}," in text


@pytest.mark.parametrize("script", NAMES)
def test_the_html_letter_embeds_the_fonts_its_names_need(
    bundles: dict[str, TemplatePublished], script: str
) -> None:
    name = NAMES[script]
    values = {**VALUES[TEMPLATE], "pupil_name": name}
    html = render_html(bundles[TEMPLATE], "nl", values, HEAD).html
    assert f'data-placeholder="pupil_name">{name}</bdi>' in html
    embedded = re.findall(r'font-weight: normal; src: url\("data:font/woff;base64,([^"]+)"\)', html)
    covered: set[int] = set()
    for data in embedded:
        font = TTFont(io.BytesIO(base64.b64decode(data)))
        covered |= set(font.getBestCmap())
    assert not [c for c in name if c != " " and ord(c) not in covered]
    assert "url(http" not in html and "@import" not in html  # nothing loaded from elsewhere


@pytest.mark.parametrize(
    ("name", "script"),
    [("王小明", "Han"), ("김민준", "Hangul"), ("ᏣᎳᎩ", "Cherokee"), ("Jan 𓀀", "Egyptian Hieroglyphs")],
)
def test_a_name_no_font_can_print_is_refused_naming_field_and_script(
    bundles: dict[str, TemplatePublished], name: str, script: str
) -> None:
    values = {**VALUES[TEMPLATE], "pupil_name": name}
    for render in (render_pdf, render_html):
        with pytest.raises(UnprintableCharacter) as refused:
            render(bundles[TEMPLATE], "nl", values, HEAD)  # type: ignore[operator]
        assert refused.value.field == "pupil_name"
        assert script in refused.value.message
        assert not set(name.replace("Jan ", "")) & set(refused.value.message)  # never the value


def test_the_letterhead_is_checked_too(bundles: dict[str, TemplatePublished]) -> None:
    from dataclasses import replace

    with pytest.raises(UnprintableCharacter) as refused:
        render_pdf(bundles[TEMPLATE], "nl", VALUES[TEMPLATE], replace(HEAD, department="学校"))
    assert refused.value.field == "letterhead"


def test_the_vendored_fonts_match_their_manifest_and_ship_with_the_package() -> None:
    manifest = json.loads((FONT_FILES / "MANIFEST.json").read_text("utf-8"))
    listed = {entry["file"]: entry for entry in manifest["files"]}
    on_disk = {p.name for p in FONT_FILES.glob("*.ttf")}
    assert on_disk == set(listed)
    for name, entry in listed.items():
        assert hashlib.sha256((FONT_FILES / name).read_bytes()).hexdigest() == entry["sha256"], name
        assert entry["licence"] == "OFL-1.1"
    assert "SIL Open Font License" in (FONT_FILES / "COPYRIGHT.debian").read_text("utf-8")
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text("utf-8"))
    data = pyproject["tool"]["setuptools"]["package-data"]["connectors.letters"]
    assert "font_files/*.ttf" in data and "font_files/MANIFEST.json" in data
