from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from datetime import date

import pytest
from pypdf import PdfReader

from connectors.letters import Letterhead, load_shared_bundle
from schemas.events import TemplatePublished

LANGS = ["nl", "en", "pl", "tr", "ar", "bg"]
TEMPLATES = ["we-zijn-je-kwijt", "wij-zijn-langs-geweest"]

HEAD = Letterhead(
    name="Gemeente Den Haag",
    department="Leerlingzaken",
    return_address=("Postbus 12652", "2500 DP Den Haag"),
    phone="14 070",
    email="leerplicht@denhaag.nl",
    website="www.denhaag.nl",
)

VALUES: dict[str, dict[str, object]] = {
    "we-zijn-je-kwijt": {
        "pupil_name": "Jan de Vries",
        "case_number": "2026-0417",
        "officer_name": "Fatima El Amrani",
        "officer_phone": "070 353 5454",
        "contact_email": "leerplicht@denhaag.nl",
        "school_name": "Johan de Witt College",
        "respond_before": date(2026, 5, 1),
    },
    "wij-zijn-langs-geweest": {
        "visit_date": date(2026, 4, 16),
        "case_number": "2026-0417",
        "officer_name": "Fatima El Amrani",
        "officer_phone": "070 353 5454",
        "contact_email": "leerplicht@denhaag.nl",
    },
}


@pytest.fixture(scope="session")
def bundles() -> dict[str, TemplatePublished]:
    return {t: load_shared_bundle(t) for t in TEMPLATES}


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


BIDI_MARKS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _pdftotext() -> str:
    """CI installs poppler-utils; elsewhere a test that needs it is skipped when it is missing."""
    exe = shutil.which("pdftotext")
    if exe is None:
        if os.environ.get("CI"):
            raise AssertionError("pdftotext is missing: install poppler-utils")
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return exe


def poppler_text(data: bytes) -> str:
    """The PDF's text as poppler's `pdftotext` reads it (the extractor most viewers and search
    indexers on Linux share), with the bidi marks it puts around right-to-left runs.
    """
    out = subprocess.run(
        [_pdftotext(), "-enc", "UTF-8", "-", "-"], input=data, capture_output=True, check=True
    )
    return out.stdout.decode("utf-8")


def poppler_words(data: bytes, page: int = 1) -> list[tuple[str, float, float, float, float]]:
    """The words on a page with their boxes in mm from the top-left corner (pdftotext -bbox)."""
    args = [_pdftotext(), "-bbox", "-f", str(page), "-l", str(page), "-enc", "UTF-8", "-", "-"]
    html = subprocess.run(args, input=data, capture_output=True, check=True).stdout.decode("utf-8")
    mm = 25.4 / 72
    return [
        (m["w"], float(m["x0"]) * mm, float(m["y0"]) * mm, float(m["x1"]) * mm, float(m["y1"]) * mm)
        for m in re.finditer(
            r'<word xMin="(?P<x0>[\d.]+)" yMin="(?P<y0>[\d.]+)" xMax="(?P<x1>[\d.]+)" '
            r'yMax="(?P<y1>[\d.]+)">(?P<w>[^<]*)</word>',
            html,
        )
    ]
