"""A PDF rendered with a font cache is the letter rendered without one: same pages, same text
read back, same fonts embedded as subsets with the same glyphs; and the fpdf2 internals the
cache relies on are still what it expects."""

from __future__ import annotations

import inspect
import io
from datetime import date
from typing import Any

import pytest
from fontTools.pens.recordingPen import DecomposingRecordingPen
from fontTools.ttLib import TTFont
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer
from pypdf import PdfReader

from connectors.letters import font_cache, render_pdf
from connectors.letters.font_cache import FontCache
from schemas.events import TemplatePublished
from tests.connectors.letters.conftest import HEAD, LANGS, VALUES, pdf_text, poppler_text

LETTER_DATE = date(2026, 4, 17)
TEMPLATE = "we-zijn-je-kwijt"
# Every language alone, then each family language after Dutch.
CASES = [(lang, False) for lang in LANGS] + [(lang, True) for lang in LANGS if lang != "nl"]


def _fonts(pdf: bytes) -> list[tuple[str, str, int, bytes, bytes, bytes]]:
    """Each embedded font: its name, its widths array, the glyphs of its font file, the file,
    its ToUnicode map and its CIDToGIDMap."""
    out = set()
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for ref in page["/Resources"]["/Font"].values():
            font: Any = ref.get_object()
            cid = font["/DescendantFonts"][0].get_object()
            data = cid["/FontDescriptor"]["/FontFile2"].get_object().get_data()
            glyphs = len(TTFont(io.BytesIO(data)).getGlyphOrder())
            to_unicode = font["/ToUnicode"].get_object().get_data()
            cid_to_gid = cid["/CIDToGIDMap"].get_object().get_data()
            out.add((str(font["/BaseFont"]), str(cid["/W"]), glyphs, data, to_unicode, cid_to_gid))
    return sorted(out)


def _drawn(pdf: bytes) -> list[tuple[str, str, bytes, list[tuple[int, int, Any]]]]:
    """Each embedded font: its name, its widths array, its ToUnicode map, and what each
    character code draws (the glyph's advance and its outline, components decomposed)."""
    out = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for ref in page["/Resources"]["/Font"].values():
            font: Any = ref.get_object()
            cid = font["/DescendantFonts"][0].get_object()
            tt = TTFont(io.BytesIO(cid["/FontDescriptor"]["/FontFile2"].get_object().get_data()))
            glyphs, order, metrics = tt.getGlyphSet(), tt.getGlyphOrder(), tt["hmtx"].metrics
            cid_to_gid = cid["/CIDToGIDMap"].get_object().get_data()
            codes = []
            for code in range(len(cid_to_gid) // 2):
                gid = int.from_bytes(cid_to_gid[code * 2 : code * 2 + 2], "big")
                if gid:
                    pen = DecomposingRecordingPen(glyphs)
                    glyphs[order[gid]].draw(pen)
                    codes.append((code, metrics[order[gid]][0], pen.value))
            out.append(
                (str(font["/BaseFont"]), str(cid["/W"]), font["/ToUnicode"].get_object().get_data(), codes)
            )
    return sorted(out, key=lambda f: f[0])


def _render(bundle: TemplatePublished, lang: str, bilingual: bool, fonts: FontCache | None) -> bytes:
    values = VALUES[TEMPLATE] | {"pupil_name": "Zeynep Yılmaz-Łukasiewicz"}
    return render_pdf(bundle, lang, values, HEAD, bilingual=bilingual, letter_date=LETTER_DATE, fonts=fonts)


def test_a_cached_letter_is_the_letter_without_the_cache(bundles: dict[str, TemplatePublished]) -> None:
    bundle = bundles[TEMPLATE]
    cache = FontCache()
    for _ in range(2):  # the second round finds everything cached, from letters in other languages
        for lang, bilingual in CASES:
            plain = _render(bundle, lang, bilingual, None)
            cached = _render(bundle, lang, bilingual, cache)
            assert len(PdfReader(io.BytesIO(cached)).pages) == len(PdfReader(io.BytesIO(plain)).pages)
            assert poppler_text(cached) == poppler_text(plain), (lang, bilingual)
            assert pdf_text(cached) == pdf_text(plain), (lang, bilingual)
            assert cached.count(b"/ActualText") == plain.count(b"/ActualText")
            assert _drawn(cached) == _drawn(plain), (lang, bilingual)


def test_with_a_letters_own_glyphs_only_fonts_are_embedded_as_fpdf2_embeds_them(
    bundles: dict[str, TemplatePublished],
) -> None:
    # The font objects are written by CachedFontsOutput, not by fpdf2: byte for byte the same.
    cache = FontCache(common_glyphs=False)
    for lang, bilingual in (("nl", False), ("pl", False), ("ar", True), ("bg", True), ("ar", True)):
        plain = _render(bundles[TEMPLATE], lang, bilingual, None)
        assert _fonts(_render(bundles[TEMPLATE], lang, bilingual, cache)) == _fonts(plain), (lang, bilingual)


def test_without_cached_streams_the_letter_is_the_same(bundles: dict[str, TemplatePublished]) -> None:
    cache = FontCache(streams=False)
    for lang in ("ar", "bg"):
        plain = _render(bundles[TEMPLATE], lang, True, None)
        cached = _render(bundles[TEMPLATE], lang, True, cache)
        assert poppler_text(cached) == poppler_text(plain)
        # fpdf2 embeds these itself, from fonts whose bounding boxes it does not recalculate.
        assert [f[:3] + f[4:] for f in _fonts(cached)] == [f[:3] + f[4:] for f in _fonts(plain)]


def test_the_caches_stay_within_their_bounds(
    bundles: dict[str, TemplatePublished], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(font_cache, "MAX_SHAPED", 50)
    monkeypatch.setattr(font_cache, "MAX_STREAMS", 1)
    cache = FontCache()
    for lang in ("nl", "pl", "nl"):
        plain = _render(bundles[TEMPLATE], lang, False, None)
        assert poppler_text(_render(bundles[TEMPLATE], lang, False, cache)) == poppler_text(plain)
    for face in cache._faces.values():
        assert len(face.shaped) <= 50 and len(face.widths) <= 50 and len(face.streams) <= 1


def test_fpdf2_internals_the_cache_relies_on() -> None:
    # A new slot needs a decision: shared with the parsed font, or per document.
    assert set(TTFFont.__slots__) == {
        *("i", "type", "name", "desc", "glyph_ids", "_hbfont", "sp", "ss", "up", "ut", "cw"),
        *("ttffile", "fontkey", "emphasis", "scale", "subset", "cmap", "ttfont", "missing_glyphs"),
        *("biggest_size_pt", "color_font", "unicode_range", "palette_index", "is_compressed"),
        *("is_cff", "is_cid_keyed", "is_symbol", "cff_ros", "collection_font_number"),
    }
    assert font_cache._PER_DOCUMENT <= set(TTFFont.__slots__)
    for method in ("perform_harfbuzz_shaping", "shaped_text_width"):
        params = list(inspect.signature(getattr(TTFFont, method)).parameters)
        assert params == ["self", "text", "font_size_pt", "text_shaping_params"], method
    assert list(inspect.signature(SubsetMap).parameters) == ["font"]
    # The PDF writer subsets the font it finds in `font.ttfont`, writes it, then closes the font;
    # it drops the tables the cached streams drop. (That the cached fonts are embedded as fpdf2
    # embeds them, byte for byte, is tested above.)
    source = inspect.getsource(OutputProducer._add_fonts)
    assert "subsetter.subset(font.ttfont)" in source and "font.ttfont.save(output)" in source
    assert "font.close()" in source
    for tag in font_cache._DROPPED:
        assert f'"{tag}"' in source, tag
    assert "ftsubset.Options(notdef_outline=True, recommended_glyphs=True)" in source
