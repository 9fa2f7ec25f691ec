"""The fonts letters are printed in, and the choice of fonts for one letter's text.

Both PDF and HTML letters use the same fonts, all OFL-1.1 and installed with the package:
- PT Sans (PyPI `fontpkg-pt-sans`): the letters' face — Latin with Latin Extended (Polish,
  Turkish) and Cyrillic (Bulgarian).
- IBM Plex Sans Arabic (PyPI `fontpkg-ibm-plex-sans-arabic`): Arabic plus basic Latin; the main
  face of Arabic text.
- Noto Sans and its Hebrew, Armenian, Georgian, Ethiopic, Devanagari and Thai families (static
  files from Debian's `fonts-noto-core`, vendored in `font_files/` with a manifest): fallbacks, so
  "Nguyễn Thị Ánh", "Παπαδόπουλος", "Ղազարյան", "ნინო", "ዮሐንስ", "כהן", "अर्जुन" and "สมชาย"
  print as they are written.
A letter embeds only the fonts its text needs (fpdf2 subsets every added font, used or not).
A character that no font covers is refused (`UnprintableCharacter`, naming the field and the
script): a name is never printed with a letter missing. Chinese, Japanese and Korean are not
covered yet and are refused that way.
"""

from __future__ import annotations

import base64
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from fontTools.unicodedata import script, script_name

from connectors.letters.errors import UnprintableCharacter
from connectors.letters.labels import DATE_LABEL, LANGUAGE_NAMES, format_date
from connectors.letters.model import Letter

_ARABIC = re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff]")
FONT_FILES = Path(str(files("connectors.letters") / "font_files"))


@dataclass(frozen=True)
class FontSet:
    family: str  # the name the PDF and the HTML's @font-face use
    regular: Path
    bold: Path
    css_name: str = field(default="", compare=False)

    def covers(self, char: str) -> bool:
        return ord(char) in _coverage(self.regular)


@cache
def _coverage(path: Path) -> frozenset[int]:
    font = TTFont(path, lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


@cache
def font_sets() -> tuple[FontSet, FontSet]:
    """The two main faces: Latin/Cyrillic and Arabic."""
    pt = files("fontpkg_pt_sans") / "files"
    plex = files("fontpkg_ibm_plex_sans_arabic") / "files"
    return (
        FontSet(
            "PTSans",
            Path(str(pt / "PT_Sans-Web-Regular.ttf")),
            Path(str(pt / "PT_Sans-Web-Bold.ttf")),
            "PT Sans",
        ),
        FontSet(
            "PlexArabic",
            Path(str(plex / "IBMPlexSansArabic-Regular.ttf")),
            Path(str(plex / "IBMPlexSansArabic-Bold.ttf")),
            "IBM Plex Sans Arabic",
        ),
    )


@cache
def fallback_sets() -> tuple[FontSet, ...]:
    """The fallbacks, in the order they are tried after the main faces."""
    out = []
    for suffix in ("", "Hebrew", "Armenian", "Georgian", "Ethiopic", "Devanagari", "Thai"):
        stem = f"NotoSans{suffix}"
        out.append(
            FontSet(
                stem,
                FONT_FILES / f"{stem}-Regular.ttf",
                FONT_FILES / f"{stem}-Bold.ttf",
                f"Noto Sans {suffix}".strip(),
            )
        )
    return tuple(out)


def _needs_glyph(char: str) -> bool:
    # Spaces, controls, format characters (the bidi isolates, ZWJ/ZWNJ) and our private-use
    # markers are never drawn from a font's cmap.
    return unicodedata.category(char) not in {"Zs", "Zl", "Zp", "Cc", "Cf", "Co"}


def fonts_for(texts: Sequence[tuple[str, str]]) -> tuple[FontSet, ...]:
    """The fonts a letter needs: the main faces (Arabic only for Arabic script), then each
    fallback that covers a character they lack. `texts` are (field, text) pairs; a character
    no font covers raises `UnprintableCharacter` for its field."""
    latin, arabic_set = font_sets()
    main = (latin, arabic_set) if any(_ARABIC.search(t) for _, t in texts) else (latin,)
    chosen: list[FontSet] = []
    seen: set[str] = set()
    for name, text in texts:
        for position, char in enumerate(text, start=1):
            if char in seen or not _needs_glyph(char):
                continue
            seen.add(char)
            if any(f.covers(char) for f in main):
                continue
            font = next((f for f in fallback_sets() if f.covers(char)), None)
            if font is None:
                raise UnprintableCharacter(
                    f"{name} has a character of the {script_name(script(char))} script "
                    f"(position {position}) that no letter font can print",
                    field=name,
                )
            if font not in chosen:
                chosen.append(font)
    order = {f.family: n for n, f in enumerate(fallback_sets())}
    return (*main, *sorted(chosen, key=lambda f: order[f.family]))


def printed_texts(
    letter: Letter, head: Sequence[str | None], recipient: Sequence[str]
) -> list[tuple[str, str]]:
    """Every text a letter prints, with the field it came from (a refusal's `field`)."""
    out = [("letterhead", line) for line in head if line]
    out += [("recipient", line) for line in recipient]
    out.append(("ref", letter.ref))
    for part in letter.parts:
        runs = [*part.subject, *(r for b in part.blocks for item in b.items for r in item)]
        out += [(r.placeholder or f"template text ({part.lang})", r.text) for r in runs]
        out.append(("labels", LANGUAGE_NAMES[part.lang] + DATE_LABEL[part.lang] + ":·•"))
        out.append(("letter date", format_date(letter.letter_date, part.lang)))
    return out


def font_face_css(fonts: Sequence[FontSet], texts: Iterable[tuple[str, str]]) -> str:
    """@font-face rules embedding `fonts`, each cut down to the characters of `texts`, so an
    HTML letter looks like its PDF on any machine and loads nothing from elsewhere."""
    chars = "".join(sorted({c for _, t in texts for c in t} | set("0123456789 ")))
    rules = []
    for font in fonts:
        for weight, path in (("normal", font.regular), ("bold", font.bold)):
            rules.append(
                f'@font-face {{ font-family: "{font.family}"; font-weight: {weight}; '
                f'src: url("data:font/woff;base64,{_subset_woff(path, chars)}") format("woff"); }}'
            )
    return "\n".join(rules)


def _subset_woff(path: Path, chars: str) -> str:
    options = subset.Options()
    options.flavor = "woff"
    options.layout_features = ["*"]  # keep shaping: Arabic joining, Devanagari conjuncts
    options.name_IDs = ["*"]  # keep the copyright and licence records
    font = TTFont(path)
    try:
        subsetter = subset.Subsetter(options)
        subsetter.populate(text=chars)
        subsetter.subset(font)
        buf = io.BytesIO()
        font.flavor = "woff"
        font.save(buf)
    finally:
        font.close()
    return base64.b64encode(buf.getvalue()).decode("ascii")
