"""PDF letters with fpdf2: HarfBuzz text shaping (uharfbuzz), the Unicode bidi algorithm,
and fonts from PyPI packages (see `fonts`).

Every inserted value is wrapped in FSI … PDI (U+2068/U+2069) so a case number or a Latin
name keeps its own direction inside an Arabic sentence. Bold is the only styling, signalled
by a private-use character that `syntax.FORBIDDEN` refuses in templates and values: fpdf2's
own markdown (`**`, `__`, `--`, `~~`, `[text](url)`) and its page-count alias never apply to
letter text, so a value like `[click](https://…)` stays plain text.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from fpdf import FPDF
from fpdf.enums import TextDirection
from fpdf.line_break import Fragment

from connectors.letters.compose import Deadline, compose
from connectors.letters.errors import InvalidValue, RenderLimitExceeded
from connectors.letters.font_cache import CachedFontsOutput, FontCache
from connectors.letters.fonts import FontSet, font_sets, fonts_for, printed_texts
from connectors.letters.labels import DATE_LABEL, LANGUAGE_NAMES, format_date
from connectors.letters.limits import DEFAULT_LIMITS, Limits
from connectors.letters.model import Block, Letter, Letterhead, LetterPart, Run
from connectors.letters.values import Value, check_address, check_lines, read_logo
from schemas.events import TemplatePublished

FSI, PDI = "\u2068", "\u2069"
_BOLD = "\ue000"  # toggles bold inside one multi_cell; refused in all input
_NO_ALIAS = "\ue001"  # fpdf2 substitutes "{nb}" by default; nothing we print can contain this

LINE = 5.4  # mm per body line at 10.5 pt
GREY = (90, 90, 90)


_SHAPED = re.compile("[\u0900-\u0dff\u0e00-\u0e7f]")  # Indic and Thai: reordering, conjuncts


def _needs_actual_text(frag: Fragment) -> bool:
    return frag.fragment_direction == TextDirection.RTL or bool(_SHAPED.search(frag.string))


class _ActualTextFragment(Fragment):
    """A run whose glyphs do not spell its text in order (right-to-left, ligatures, conjuncts):
    it carries its text as /ActualText, so copying, searching and screen readers get the words
    as written instead of the glyphs as drawn."""

    def render_pdf_text(self, *args: Any, **kwargs: Any) -> str:
        out = super().render_pdf_text(*args, **kwargs)
        if not out:
            return out
        text = self.string
        if self.fragment_direction == TextDirection.RTL:
            # Drawn right to left; extractors (poppler, MuPDF) reorder a line's text to logical
            # order themselves, so they are given it in the order the run is drawn.
            text = text[::-1]
        actual = ("\ufeff" + text).encode("utf-16-be").hex().upper()
        return f"/Span <</ActualText <{actual}>>> BDC {out} EMC"


class _LetterPDF(FPDF):
    def __init__(self, ref: str) -> None:
        super().__init__(format="A4", unit="mm")
        self.ref = ref
        self.str_alias_nb_pages = _NO_ALIAS
        self.font_families: tuple[FontSet, ...] = ()

    def _parse_chars(
        self,
        text: str,
        markdown: bool,
        *,
        _initial_emphasis: tuple[bool, bool, bool, bool] | None = None,
    ) -> Iterator[Fragment]:
        # Replace fpdf2's markdown with our one private-use bold toggle.
        if not markdown:
            yield from super()._parse_chars(text, False, _initial_emphasis=_initial_emphasis)
            return
        emphasis = _initial_emphasis or ("B" in self.font_style, False, False, False)
        bold = emphasis[0]
        # The bidi step has run on the whole line (fpdf2 calls this per directional segment):
        # the isolates did their work and are dropped, so no zero-width glyph splits a word
        # for a reader that copies or searches the text.
        text = text.replace(FSI, "").replace(PDI, "")
        for n, piece in enumerate(text.split(_BOLD)):
            if n:
                bold = not bold
            if piece:
                for frag in super()._parse_chars(piece, False, _initial_emphasis=(bold, False, False, False)):
                    if type(frag) is Fragment and _needs_actual_text(frag):
                        frag.__class__ = _ActualTextFragment
                    yield frag
        self._markdown_emphasis = (bold, False, False, False)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_text_shaping(True, direction="ltr")
        self.set_font(font_sets()[0].family, "", 7.5)
        self.set_text_color(*GREY)
        self.cell(0, 5, f"{self.ref}  ·  {self.page_no()}", align="C")
        self.set_text_color(0, 0, 0)


def _text(runs: Sequence[Run]) -> str:
    out: list[str] = []
    for r in runs:
        text = FSI + r.text + PDI if r.placeholder is not None else r.text
        out.append(_BOLD + text + _BOLD if r.bold else text)
    return "".join(out)


def _setup(pdf: _LetterPDF, texts: Sequence[tuple[str, str]], cache: FontCache | None = None) -> None:
    # fpdf2 subsets and embeds every added font, used or not (most of a letter's output time),
    # so a font joins only when the letter's text needs it.
    pdf.font_families = fonts_for(texts)
    for fs in pdf.font_families:
        for style, path in (("", fs.regular), ("B", fs.bold)):
            if cache is None:
                pdf.add_font(fs.family, style, path)
            else:
                cache.add_font(pdf, fs.family, style, path)
    pdf.set_margins(22, 18, 20)
    pdf.set_auto_page_break(True, margin=20)


def _use(pdf: _LetterPDF, part_lang: str, size: float, style: str = "") -> None:
    fonts = list(pdf.font_families)
    arabic = font_sets()[1]
    if part_lang == "ar" and arabic in fonts:
        fonts.remove(arabic)
        fonts.insert(0, arabic)
    main, *fallback = fonts
    pdf.set_font(main.family, style, size)
    pdf.set_fallback_fonts([f.family for f in fallback], exact_match=False)
    direction = "rtl" if part_lang == "ar" else "ltr"
    pdf.set_text_shaping(True, direction=direction)


def _para(pdf: _LetterPDF, text: str, align: str, h: float = LINE, w: float = 0) -> None:
    pdf.multi_cell(w, h, text, align=align, markdown=True, new_x="LMARGIN", new_y="NEXT")


# The address field of a window envelope, in mm from the sheet's top-left corner: DIN 5008
# form B, the field DIN 676 window envelopes (DL and C5/6, the sizes used for an A4 letter
# folded in three or in half) show through their window. Its top 17.7 mm hold the return
# address line (8 pt, written from the bottom up), the 27.3 mm below it the recipient's address
# (at most six lines). The letter's text starts below the field.
WINDOW_X, WINDOW_Y, WINDOW_W, WINDOW_H = 20.0, 45.0, 85.0, 45.0
RETURN_ZONE_H = 17.7
ADDRESS_LINE = 4.5  # mm per address line at 10 pt: six lines fill the 27.3 mm zone
ADDRESS_LINES = 6
TEXT_X = 22.0  # the letter's left margin, inside the window
BODY_TOP = WINDOW_Y + WINDOW_H + 8
LOGO_H, LOGO_MAX_W = 14.0, 60.0


def _letterhead(pdf: _LetterPDF, lh: Letterhead, recipient: Sequence[str]) -> None:
    # Left: logo, name, department. Right: visiting address and contact details. Both end
    # above the envelope window.
    top = pdf.get_y()
    right_top = top
    if lh.logo is not None:
        media, data = read_logo(lh.logo)
        image = io.BytesIO(data) if media == "image/png" else str(lh.logo)
        pdf.image(
            image, x=pdf.l_margin, y=8, w=LOGO_MAX_W, h=LOGO_H, keep_aspect_ratio=True, alt_text=lh.name
        )
        top, right_top = 8 + LOGO_H + 3, 10
        pdf.set_y(top)
    _use(pdf, "nl", 15, "B")
    _para(pdf, FSI + lh.name + PDI, "L", h=7, w=100)
    _use(pdf, "nl", 10)
    if lh.department:
        _para(pdf, FSI + lh.department + PDI, "L", w=100)
    left_bottom = pdf.get_y()
    pdf.set_y(right_top)
    _use(pdf, "nl", 8.5)
    for line in (*lh.visiting_address, lh.phone, lh.email, lh.website):
        if line:
            pdf.set_x(pdf.w - pdf.r_margin - 60)
            pdf.multi_cell(60, 4.2, FSI + line + PDI, align="R", markdown=True, new_x="LMARGIN", new_y="NEXT")
    rule = max(pdf.get_y(), left_bottom) + 2
    if rule > WINDOW_Y - 2:
        raise RenderLimitExceeded(
            "the letterhead reaches into the envelope window: use a smaller logo or fewer lines"
        )
    pdf.set_draw_color(150, 150, 150)
    pdf.line(pdf.l_margin, rule, pdf.w - pdf.r_margin, rule)
    _address_field(pdf, lh, recipient)
    pdf.set_y(max(pdf.get_y(), BODY_TOP))


def _address_field(pdf: _LetterPDF, lh: Letterhead, recipient: Sequence[str]) -> None:
    """The return address line and the recipient's address, where the window shows them."""
    room = WINDOW_X + WINDOW_W - TEXT_X - 2
    if lh.return_address:
        _use(pdf, "nl", 8)
        line = "  ·  ".join(FSI + x + PDI for x in lh.return_address)
        if pdf.get_string_width(line) > room:
            raise InvalidValue(
                f"letterhead: the return address is wider than the envelope window ({room:g} mm at 8 pt)",
                field="letterhead",
            )
        pdf.set_text_color(*GREY)
        pdf.set_xy(TEXT_X, WINDOW_Y + RETURN_ZONE_H - 4.6)
        pdf.multi_cell(room, 4.2, line, align="L", markdown=True, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    if not recipient:
        return
    _use(pdf, "nl", 10)
    for n, line in enumerate(recipient, start=1):
        if pdf.get_string_width(FSI + line + PDI) > room:
            raise InvalidValue(
                f"recipient: line {n} is wider than the envelope window ({room:g} mm at 10 pt)",
                field="recipient",
            )
    pdf.set_y(WINDOW_Y + RETURN_ZONE_H)
    for line in recipient:
        pdf.set_x(TEXT_X)
        pdf.multi_cell(
            room, ADDRESS_LINE, FSI + line + PDI, align="L", markdown=True, new_x="LMARGIN", new_y="NEXT"
        )


def _block(pdf: _LetterPDF, block: Block, lang: str, align: str) -> None:
    if block.kind == "heading":
        _use(pdf, lang, {1: 15.0, 2: 13.0}.get(block.level, 11.5), "B")
        _para(pdf, _text(block.items[0]), align, h=7)
        pdf.ln(1.5)
        return
    _use(pdf, lang, 10.5)
    if block.kind == "list":
        indent = 6.0
        for item in block.items:
            y = pdf.get_y()
            if align == "R":
                pdf.set_xy(pdf.w - pdf.r_margin - indent, y)
                pdf.cell(indent, LINE, "•", align="C")
                pdf.set_xy(pdf.l_margin, y)
            else:
                pdf.set_xy(pdf.l_margin, y)
                pdf.cell(indent, LINE, "•", align="C")
                pdf.set_xy(pdf.l_margin + indent, y)
            pdf.multi_cell(
                pdf.epw - indent,
                LINE,
                _text(item),
                align=align,
                markdown=True,
                new_x="LMARGIN",
                new_y="NEXT",
            )
        pdf.ln(2.5)
        return
    _para(pdf, _text(block.items[0]), align)
    pdf.ln(2.5)


def _part(pdf: _LetterPDF, letter: Letter, part: LetterPart, deadline: Deadline) -> None:
    align = "R" if part.direction == "rtl" else "L"
    if letter.bilingual:
        _use(pdf, part.lang, 8.5)
        pdf.set_text_color(*GREY)
        _para(pdf, LANGUAGE_NAMES[part.lang], align, h=4.5)
        pdf.set_text_color(0, 0, 0)
    _use(pdf, part.lang, 10)
    _para(pdf, f"{DATE_LABEL[part.lang]}: {FSI}{format_date(letter.letter_date, part.lang)}{PDI}", align)
    pdf.ln(3)
    _use(pdf, part.lang, 12, "B")
    _para(pdf, _text(part.subject), align, h=6)
    pdf.ln(4)
    for block in part.blocks:
        _block(pdf, block, part.lang, align)
        deadline.check()


# The same page, fonts and text shaping for other documents the connector prints (a pupil's
# access report, `connectors.workspace.report_pdf`).
DocumentPDF = _LetterPDF
setup_fonts = _setup
use_font = _use


def letter_pdf(
    letter: Letter,
    letterhead: Letterhead,
    *,
    recipient: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    deadline: Deadline | None = None,
    fonts: FontCache | None = None,
) -> bytes:
    """Lay out an already composed letter; bilingual letters start each language on a page.
    `fonts` (one per thread) keeps parsed fonts and shaping results for the next letters."""
    deadline = deadline or Deadline(limits.seconds)
    head_lines = letterhead.lines
    check_lines(head_lines, "letterhead", limits)
    check_lines(tuple(recipient), "recipient", limits)
    check_address(recipient)
    pdf = _LetterPDF(letter.ref)
    pdf.set_title(letter.title)
    pdf.set_subject(letter.ref)
    pdf.set_creator("Inbeeld")
    pdf.set_lang(letter.parts[0].lang)
    _setup(pdf, printed_texts(letter, head_lines, recipient), fonts)
    try:
        for n, part in enumerate(letter.parts):
            pdf.add_page()
            if n == 0:
                _letterhead(pdf, letterhead, recipient)
            _part(pdf, letter, part, deadline)
            if pdf.page > limits.pdf_pages:
                raise RenderLimitExceeded(f"the PDF letter would be longer than {limits.pdf_pages} pages")
        out = bytes(pdf.output(output_producer_class=CachedFontsOutput))
    finally:
        for font in pdf.fonts.values():  # fontTools keeps the font files open otherwise
            close = getattr(font, "close", None)
            if close is not None:
                close()
    if len(out) > limits.pdf_bytes:
        raise RenderLimitExceeded(f"the PDF letter would be larger than {limits.pdf_bytes} bytes")
    deadline.check()
    return out


def render_pdf(
    bundle: TemplatePublished,
    lang: str,
    values: Mapping[str, Value | None],
    letterhead: Letterhead,
    *,
    bilingual: bool = False,
    recipient: Sequence[str] = (),
    letter_date: date | None = None,
    limits: Limits = DEFAULT_LIMITS,
    fonts: FontCache | None = None,
) -> bytes:
    """Render a letter as PDF (bilingual: Dutch, then `lang`); `fonts`: see `letter_pdf`."""
    deadline = Deadline(limits.seconds)
    letter = compose(
        bundle,
        lang,
        values,
        bilingual=bilingual,
        letter_date=letter_date,
        limits=limits,
        deadline=deadline,
    )
    return letter_pdf(letter, letterhead, recipient=recipient, limits=limits, deadline=deadline, fonts=fonts)
