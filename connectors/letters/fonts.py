"""The fonts PDF letters embed, from PyPI packages (OFL-1.1), so nothing is needed from the OS.

- PT Sans (`fontpkg-pt-sans`): Latin with Latin Extended (Polish, Turkish) and Cyrillic
  (Bulgarian); static regular and bold.
- IBM Plex Sans Arabic (`fontpkg-ibm-plex-sans-arabic`): Arabic plus basic Latin; static
  regular and bold (static files load ~20x faster in fpdf2 than instancing a variable font).
Each is the other's fallback, so a Latin name in an Arabic letter and an Arabic name in a
Dutch one both render.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path


@dataclass(frozen=True)
class FontSet:
    family: str
    regular: Path
    bold: Path


@cache
def font_sets() -> tuple[FontSet, FontSet]:
    pt = files("fontpkg_pt_sans") / "files"
    plex = files("fontpkg_ibm_plex_sans_arabic") / "files"
    return (
        FontSet(
            "PTSans",
            Path(str(pt / "PT_Sans-Web-Regular.ttf")),
            Path(str(pt / "PT_Sans-Web-Bold.ttf")),
        ),
        FontSet(
            "PlexArabic",
            Path(str(plex / "IBMPlexSansArabic-Regular.ttf")),
            Path(str(plex / "IBMPlexSansArabic-Bold.ttf")),
        ),
    )
