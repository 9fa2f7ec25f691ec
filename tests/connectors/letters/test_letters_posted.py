"""Letters a municipality can post as they are: the address where a window envelope shows it,
checked before rendering, and the municipality's own letterhead and logo."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader

from connectors.letters import InvalidValue, render_html, render_pdf
from connectors.letters.errors import RenderLimitExceeded
from connectors.letters.pdf import RETURN_ZONE_H, WINDOW_H, WINDOW_W, WINDOW_X, WINDOW_Y
from schemas.events import TemplatePublished
from tests.connectors.letters.conftest import HEAD, VALUES, poppler_words

TEMPLATE = "we-zijn-je-kwijt"
ADDRESS = ["Aan de ouders/verzorgers van", "Jan de Vries", "Proefstraat 12", "2511 AB  DEN HAAG"]


def _pdf(bundles: dict[str, TemplatePublished], head=HEAD, recipient=ADDRESS) -> bytes:  # type: ignore[no-untyped-def]
    values = VALUES[TEMPLATE]
    return render_pdf(
        bundles[TEMPLATE], "nl", values, head, recipient=recipient, letter_date=date(2026, 4, 17)
    )


def test_the_address_and_return_line_sit_in_the_envelope_window(
    bundles: dict[str, TemplatePublished],
) -> None:
    words = poppler_words(_pdf(bundles))
    address_words = {w for line in ADDRESS for w in line.split()}
    field = [(w, x0, y0, x1, y1) for w, x0, y0, x1, y1 in words if WINDOW_Y <= y0 < WINDOW_Y + WINDOW_H]
    placed = [p for p in field if p[0] in address_words]
    assert {w for w, *_ in placed} == address_words
    zone_top = WINDOW_Y + RETURN_ZONE_H
    for w, x0, y0, x1, y1 in placed:
        assert WINDOW_X <= x0 and x1 <= WINDOW_X + WINDOW_W, w
        assert zone_top - 0.5 <= y0 and y1 <= WINDOW_Y + WINDOW_H, w
    returned = [(x0, y0, x1, y1) for w, x0, y0, x1, y1 in words if w == "Postbus"]
    [(x0, y0, x1, y1)] = returned
    assert WINDOW_X <= x0 and x1 <= WINDOW_X + WINDOW_W
    assert WINDOW_Y <= y0 and y1 <= zone_top  # the return line sits above the address
    # Nothing of the letter's own text inside the window but the address and the return line.
    allowed = address_words | {"Postbus", "12652", "·", "2500", "DP", "Den", "Haag"}
    inside = [w for w, x0, y0, x1, y1 in field if x0 < WINDOW_X + WINDOW_W]
    assert set(inside) <= allowed, set(inside) - allowed


@pytest.mark.parametrize(
    ("address", "why"),
    [
        (["Jan de Vries"], "2 to 6 lines"),
        (["a", "b", "c", "d", "e", "f", "2511 AB  DEN HAAG"], "2 to 6 lines"),
        (["Jan de Vries", "Proefstraat 12", "2511ab Den Haag"], "line 3 has a postcode"),
        (["Jan de Vries", "Proefstraat 12", "Den Haag"], "last line"),
        (["Jan de Vries", "", "2511 AB  DEN HAAG"], "line 2 is blank"),
        (
            ["Jan Pieterszoon Coenraad van der Vries-Bakkerstraat 1234 bis A", "2511 AB  DEN HAAG"],
            "line 1 is wider",
        ),
    ],
)
def test_an_address_the_post_cannot_read_is_refused(
    bundles: dict[str, TemplatePublished], address: list[str], why: str
) -> None:
    with pytest.raises(InvalidValue, match=why) as refused:
        _pdf(bundles, recipient=address)
    assert refused.value.field == "recipient"


def test_an_address_abroad_ends_with_the_country(bundles: dict[str, TemplatePublished]) -> None:
    abroad = ["Familie Peeters", "Kerkstraat 1", "2000 Antwerpen", "BELGIË"]
    words = {w for w, *_ in poppler_words(_pdf(bundles, recipient=abroad))}
    assert {"Peeters", "Antwerpen", "BELGIË"} <= words


def _png(path: Path, size: tuple[int, int] = (300, 80)) -> Path:
    Image.new("RGB", size, (21, 66, 115)).save(path, "PNG")
    return path


def test_the_logo_prints_in_the_letterhead_in_pdf_and_html(
    bundles: dict[str, TemplatePublished], tmp_path: Path
) -> None:
    head = replace(HEAD, logo=_png(tmp_path / "logo.png"), visiting_address=("Spui 70", "2511 BT Den Haag"))
    pdf = _pdf(bundles, head=head)
    [image] = PdfReader(io.BytesIO(pdf)).pages[0].images
    assert image.image is not None and image.image.size == (300, 80)
    words = {w for w, *_ in poppler_words(pdf)}
    assert {"Spui", "70", "2511", "BT"} <= words
    html = render_html(bundles[TEMPLATE], "nl", VALUES[TEMPLATE], head, recipient=ADDRESS).html
    assert '<img src="data:image/png;base64,' in html and 'alt="Gemeente Den Haag"' in html

    svg = tmp_path / "logo.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 80"><rect width="300" height="80"/></svg>'
    )
    assert _pdf(bundles, head=replace(head, logo=svg)).startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("name", "content", "why"),
    [
        ("logo.gif", b"GIF89a", "must be a .png or .svg"),
        ("logo.png", b"<svg/>", "not a PNG"),
        ("logo.svg", b"\x89PNG\r\n\x1a\n", "not a SVG"),
        ("logo.png", b"\x89PNG\r\n\x1a\n" + b"0" * (300 * 1024), "larger than"),
    ],
)
def test_a_logo_that_is_not_one_is_refused(
    bundles: dict[str, TemplatePublished], tmp_path: Path, name: str, content: bytes, why: str
) -> None:
    (tmp_path / name).write_bytes(content)
    head = replace(HEAD, logo=tmp_path / name)
    for render in (
        lambda: _pdf(bundles, head=head),
        lambda: render_html(bundles[TEMPLATE], "nl", VALUES[TEMPLATE], head),
    ):
        with pytest.raises(InvalidValue, match=why):
            render()


def test_a_letterhead_that_reaches_into_the_window_is_refused(bundles: dict[str, TemplatePublished]) -> None:
    tall = replace(HEAD, visiting_address=tuple(f"regel {n}" for n in range(8)))
    with pytest.raises(RenderLimitExceeded, match="envelope window"):
        _pdf(bundles, head=tall)
