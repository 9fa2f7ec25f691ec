"""A pupil's access report as PDF, printed with the letters' fonts and text shaping
(`connectors.letters.pdf`): a name in Arabic, Greek or Hebrew prints as it is written, and a
character no font covers is refused (`UnprintableCharacter`) rather than printed missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from connectors.letters.pdf import FSI, PDI, DocumentPDF, setup_fonts, use_font

__all__ = ["PrintedReport", "report_pdf"]

_MARKERS = str.maketrans("", "", "\ue000\ue001")  # the letters' private-use markers: never printed


@dataclass(frozen=True)
class PrintedReport:
    """What the PDF prints, in the reader's language already."""

    lang: str
    ref: str  # in the footer of every page
    title: str
    heading: str
    lines: Sequence[str]  # the pupil and who made the report
    intro: str
    steps_title: str
    labels: Sequence[str]  # one per column of a step
    steps: Sequence[Sequence[str]]  # per step: its cells, in the order of `labels`
    none: str


def _clean(text: str) -> str:
    return text.translate(_MARKERS)


def report_pdf(report: PrintedReport) -> bytes:
    """The report as an A4 PDF. Values (a name, a citation) are isolated from the text around
    them, so a right-to-left name keeps its own direction in a Dutch line."""
    texts = [("report", _clean(x)) for x in (report.title, report.heading, report.intro, *report.lines)]
    texts += [("report", _clean(cell)) for step in report.steps for cell in step]
    texts += [("report", label) for label in report.labels]
    pdf = DocumentPDF(report.ref)
    pdf.set_title(report.title)
    pdf.set_creator("Inbeeld")
    pdf.set_lang(report.lang)
    setup_fonts(pdf, texts)
    try:
        pdf.add_page()
        width = pdf.w - pdf.l_margin - pdf.r_margin
        use_font(pdf, report.lang, 15, "B")
        _para(pdf, _clean(report.heading), 7)
        use_font(pdf, report.lang, 9)
        _para(pdf, report.title, 5)
        pdf.ln(2)
        use_font(pdf, report.lang, 10)
        for line in report.lines:
            _para(pdf, FSI + _clean(line) + PDI, 5)
        pdf.ln(2)
        _para(pdf, report.intro, 5)
        pdf.ln(3)
        use_font(pdf, report.lang, 12, "B")
        _para(pdf, report.steps_title, 6)
        if not report.steps:
            use_font(pdf, report.lang, 10)
            _para(pdf, report.none, 5)
        for n, step in enumerate(report.steps, start=1):
            pdf.ln(2)
            use_font(pdf, report.lang, 10, "B")
            _para(pdf, f"{n}. {_clean(step[0])}", 5)
            use_font(pdf, report.lang, 10)
            _para(pdf, _clean(step[1]), 5, indent=5.0, width=width - 5)
            for label, cell in zip(report.labels[2:], step[2:], strict=True):
                _para(pdf, f"{label}: {FSI}{_clean(cell)}{PDI}", 5, indent=5.0, width=width - 5)
        return bytes(pdf.output())
    finally:
        for font in pdf.fonts.values():  # fontTools keeps the font files open otherwise
            close = getattr(font, "close", None)
            if close is not None:
                close()


def _para(pdf: DocumentPDF, text: str, h: float, *, indent: float = 0.0, width: float = 0) -> None:
    if indent:
        pdf.set_x(pdf.l_margin + indent)
    pdf.multi_cell(width, h, text, markdown=True, new_x="LMARGIN", new_y="NEXT")
