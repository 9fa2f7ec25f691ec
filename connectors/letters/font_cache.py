"""Fonts parsed once and shaping results kept, for the letters one thread renders in a row.

Without a cache every PDF letter parses its font files again (fpdf2 subsets the parsed font
in place when it writes the PDF, so a parsed font serves one document only), and its line
breaker shapes the same template text with HarfBuzz letter after letter: it measures every
growing prefix of a line. A `FontCache` holds, per font file:
- the file's bytes, the parsed font and its HarfBuzz font, shared by every letter: a letter
  gets a copy of fpdf2's font object whose per-document state (the glyphs used, the subset
  map, the font descriptor) is its own;
- what HarfBuzz made of a text at a size and direction (its glyphs and their widths);
- the font file embedded for a set of glyphs, cut down as fpdf2 cuts it: letters of a batch
  in one language mostly use the same glyphs (the template's). A letter embeds its own glyphs
  and the font's printable ASCII, so that letters differing in a digit share a subset; what a
  letter embeds never depends on another letter.
A PDF rendered with a cache has the same pages, text, widths and ToUnicode maps as one rendered
without, and each character code draws the same glyph outline; without the ASCII glyphs
(`common_glyphs=False`) it embeds the same font files and maps byte for byte.

A cache is not thread-safe (HarfBuzz fonts carry the size of the last shaping): one per
thread or process. It holds letter text (the shaping keys), so it lives in the process that
renders and is never written anywhere.

fpdf2 internals used (pinned to 2.8.x in pyproject; tests/connectors/letters/
test_letters_font_cache.py fails when they change): the slots of `TTFFont`, its
`perform_harfbuzz_shaping` and `shaped_text_width`, `SubsetMap`, and the TrueType branch of
`OutputProducer._add_fonts` (which `CachedFontsOutput` repeats for cached fonts, and which
otherwise subsets `font.ttfont` in place, then calls `font.close()`).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fontTools import subset
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import (
    CIDSystemInfo,
    OutputProducer,
    PDFExtGState,
    PDFFont,
    PDFFontStream,
    PDFType3Font,
    PDFXObject,
    _build_cmap_blocks,
    _tt_font_widths,
)
from fpdf.pattern import Pattern
from fpdf.syntax import Name, PDFArray, PDFContentStream

__all__ = ["CachedFontsOutput", "FontCache"]

# Bounds per font file: shaping keys are texts (a paragraph's prefixes), so a long batch
# would otherwise grow without limit. When full, a table starts again.
MAX_SHAPED = 20_000
MAX_STREAMS = 64

# What fpdf2 drops when it subsets a font for embedding (fpdf.output.OutputProducer._add_fonts).
_DROPPED = ["FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix", "CBDT", "CBLC"]
_DROPPED += ["EBDT", "EBLC", "EBSC", "SVG ", "CPAL", "COLR"]

# Per-document state of a TTFFont; every other slot is shared with the parsed font.
_PER_DOCUMENT = frozenset({"i", "fontkey", "emphasis", "subset", "missing_glyphs", "biggest_size_pt", "desc"})

_ShapeKey = tuple[str, float, Any, Any, Any, tuple[tuple[str, Any], ...]]


class _Face:
    """One font file, parsed once."""

    def __init__(self, path: Path, *, keep_streams: bool, common_glyphs: bool) -> None:
        self.path = path
        self.keep_streams = keep_streams
        self.data = path.read_bytes()
        # A TTFFont needs a document to be built; this one only lends it its settings.
        self.parsed = TTFFont(FPDF(), path, path.stem, "")
        # Read from memory from now on: a cache dropped leaves no file open.
        opened, self.parsed.ttfont = self.parsed.ttfont, _load(self.data)
        opened.close()
        if self.parsed.is_cff or self.parsed.color_font is not None:
            raise ValueError(f"{path.name}: only TrueType outline fonts are cached")
        self.hbfont = self.parsed.hbfont
        # Embedded with every letter's own glyphs, so that letters differing only in the ASCII
        # characters of their values (a case number's digits, a name's initials) share one
        # subset: never glyphs another letter used, which would tell what it said.
        cmap = self.parsed.cmap
        self.common = (
            frozenset(cmap[c] for c in range(0x20, 0x7F) if c in cmap) if common_glyphs else frozenset()
        )
        self.shaped: dict[_ShapeKey, tuple[Sequence[Any], Sequence[Any]]] = {}
        self.widths: dict[_ShapeKey, tuple[int, float]] = {}
        self.streams: dict[frozenset[str], tuple[bytes, dict[str, int]]] = {}

    def embedded(self, glyph_names: frozenset[str]) -> tuple[bytes, dict[str, int]]:
        """The font file fpdf2 embeds for these glyphs (cut down as it cuts it), and each
        glyph's id in it."""
        out = self.streams.get(glyph_names)
        if out is None:
            font = _load(self.data)
            options = subset.Options(notdef_outline=True, recommended_glyphs=True)
            options.drop_tables += _DROPPED
            subsetter = subset.Subsetter(options)
            subsetter.populate(glyphs=sorted(glyph_names))
            subsetter.subset(font)
            gids = {name: font.getGlyphID(name) for name in glyph_names}
            buf = io.BytesIO()
            font.save(buf)
            font.close()
            out = (buf.getvalue(), gids)
            if len(self.streams) >= MAX_STREAMS:
                self.streams.clear()
            self.streams[glyph_names] = out
        return out


class _CachedFont(TTFFont):
    """fpdf2's font object for one document, sharing the parsed font of its `_Face`."""

    __slots__ = ("face",)

    face: _Face

    def perform_harfbuzz_shaping(
        self, text: str, font_size_pt: float, text_shaping_params: dict[str, Any] | None
    ) -> tuple[Sequence[Any], Sequence[Any]]:
        key = _key(text, font_size_pt, text_shaping_params)
        shaped = self.face.shaped.get(key)
        if shaped is None:
            shaped = super().perform_harfbuzz_shaping(text, font_size_pt, text_shaping_params)
            if len(self.face.shaped) >= MAX_SHAPED:
                self.face.shaped.clear()
            self.face.shaped[key] = shaped
        return shaped

    def shaped_text_width(
        self, text: str, font_size_pt: float, text_shaping_params: dict[str, Any] | None
    ) -> tuple[int, float]:
        key = _key(text, font_size_pt, text_shaping_params)
        width = self.face.widths.get(key)
        if width is None:
            width = super().shaped_text_width(text, font_size_pt, text_shaping_params)
            if len(self.face.widths) >= MAX_SHAPED:
                self.face.widths.clear()
            self.face.widths[key] = width
        return width

    def close(self) -> None:
        # fpdf2 closes a font once it is embedded, or the document is dropped: the parsed
        # font is the face's and stays open for the next letter.
        if self.ttfont is not self.face.parsed.ttfont:
            self.ttfont.close()
        self._hbfont = None


def _load(data: bytes, *, recalc_bboxes: bool = True) -> TTFont:
    return TTFont(io.BytesIO(data), lazy=True, recalcTimestamp=False, recalcBBoxes=recalc_bboxes)


def _key(text: str, size: float, params: dict[str, Any] | None) -> _ShapeKey:
    p = params or {}
    features = p.get("features")
    feature_key = tuple(sorted(features.items())) if features else ()
    return (text, size, p.get("fragment_direction"), p.get("script"), p.get("language"), feature_key)


class CachedFontsOutput(OutputProducer):
    """fpdf2's PDF writer, embedding cached fonts from the font cache's streams.

    fpdf2 subsets the font object's `ttfont` in place and writes it; a cached font's parsed
    font is shared, so its letters embed the cached stream for their glyphs instead
    (`_add_cached_font`: fpdf2 2.8's TrueType branch of `_add_fonts`, for fonts without
    colour, CFF outlines or PDF/A-1's CIDSet), or, without cached streams, the font file
    parsed anew for fpdf2 to subset.
    """

    def _add_fonts(
        self,
        image_objects_per_index: dict[int, PDFXObject],
        gfxstate_objs_per_name: dict[str, PDFExtGState],
        pattern_objs_per_name: dict[str, Pattern],
    ) -> dict[int, PDFFont | PDFType3Font]:
        fonts = sorted(self.fpdf.fonts.values(), key=lambda font: font.i)
        cached = [f for f in fonts if isinstance(f, _CachedFont) and f.face.keep_streams]
        if cached and len(cached) == len(fonts) and not self.fpdf._compliance:
            return {font.i: self._add_cached_font(font) for font in cached}
        for font in fonts:
            if isinstance(font, _CachedFont):
                # Not recalculating bounding boxes spares fpdf2 decoding and encoding every
                # glyph's outline again: the glyphs are the font file's, unchanged.
                font.ttfont = _load(font.face.data, recalc_bboxes=False)
        return super()._add_fonts(image_objects_per_index, gfxstate_objs_per_name, pattern_objs_per_name)

    def _add_cached_font(self, font: _CachedFont) -> PDFFont:
        stream, gids = font.face.embedded(frozenset(font.subset.get_all_glyph_names()) | font.face.common)
        fontname = f"MPDFAA+{font.name}"
        composite = PDFFont(subtype="Type0", base_font=fontname, encoding="Identity-H")
        self._add_pdf_obj(composite, "fonts")
        cid_font = PDFFont(
            subtype="CIDFontType2", base_font=fontname, d_w=font.desc.missing_width, w=_tt_font_widths(font)
        )
        self._add_pdf_obj(cid_font, "fonts")
        composite.descendant_fonts = PDFArray([cid_font])
        to_unicode = PDFContentStream(_to_unicode_cmap(font).encode("latin-1"))
        self._add_pdf_obj(to_unicode, "fonts")
        composite.to_unicode = to_unicode
        system_info = CIDSystemInfo()
        self._add_pdf_obj(system_info, "fonts")
        cid_font.c_i_d_system_info = system_info
        descriptor = font.desc
        descriptor.font_name = Name(fontname)
        self._add_pdf_obj(descriptor, "fonts")
        cid_font.font_descriptor = descriptor
        cid_to_gid = bytearray(256 * 256 * 2)
        for glyph, code in font.subset.items():
            if glyph is not None:
                gid = gids[glyph.glyph_name]
                cid_to_gid[code * 2 : code * 2 + 2] = gid.to_bytes(2, "big")
        cid_to_gid_map = PDFContentStream(contents=bytes(cid_to_gid), compress=True)
        self._add_pdf_obj(cid_to_gid_map, "fonts")
        cid_font.c_i_d_to_g_i_d_map = cid_to_gid_map
        font_file = PDFFontStream(contents=stream)
        self._add_pdf_obj(font_file, "fonts")
        descriptor.font_file2 = font_file  # type: ignore[attr-defined]  # as fpdf2 sets it
        font.subset.pick.cache_clear()
        font.subset.get_glyph.cache_clear()
        font.close()
        return composite


def _to_unicode_cmap(font: TTFFont) -> str:
    """The ToUnicode CMap fpdf2 writes: the text each character code stands for."""
    entries = []
    for glyph, code in font.subset.items():
        if glyph is None or not isinstance(glyph.unicode, tuple) or not glyph.unicode:
            continue
        text = "".join(chr(c) for c in glyph.unicode).encode("utf-16-be").hex().upper()
        entries.append(f"<{code:04X}> <{text}>\n")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n/CIDSystemInfo\n"
        "<</Registry (Adobe)\n/Ordering (UCS)\n/Supplement 0\n>> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        f"{_build_cmap_blocks(entries, 'bfchar')}"
        "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend"
    )


class FontCache:
    """Parsed fonts and shaping results for the letters one thread renders (see module doc).
    `streams=False` leaves out the embedded font streams (each letter subsets its fonts);
    `common_glyphs=False` embeds a letter's glyphs only (as fpdf2 does), not also the font's
    printable ASCII."""

    def __init__(self, *, streams: bool = True, common_glyphs: bool = True) -> None:
        self._faces: dict[Path, _Face] = {}
        self._streams = streams
        self._common_glyphs = common_glyphs

    def _face(self, path: Path) -> _Face:
        face = self._faces.get(path)
        if face is None:
            face = self._faces[path] = _Face(
                path, keep_streams=self._streams, common_glyphs=self._common_glyphs
            )
        return face

    def add_font(self, pdf: FPDF, family: str, style: str, path: Path) -> None:
        """What `pdf.add_font(family, style, path)` does for a TrueType file, without parsing it."""
        fontkey = f"{family.lower()}{style}"
        face = self._face(path)
        font: _CachedFont = _CachedFont.__new__(_CachedFont)
        for name in TTFFont.__slots__:
            if name not in _PER_DOCUMENT and hasattr(face.parsed, name):
                setattr(font, name, getattr(face.parsed, name))
        font.face = face
        font.i = len(pdf.fonts) + 1
        font.fontkey = fontkey
        font.emphasis = type(face.parsed.emphasis).coerce(style)
        font.desc = copy.copy(face.parsed.desc)  # the PDF writer gives it an object id and a name
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font._hbfont = face.hbfont
        font.subset = SubsetMap(font)
        pdf.fonts[fontkey] = font
