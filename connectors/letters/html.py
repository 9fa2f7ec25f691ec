"""HTML letters through a trusted Jinja2 layout shipped in this package.

Only our own layout is a Jinja template (autoescape on, StrictUndefined); the untrusted
template text arrives already parsed into runs of plain text, so nothing in it is evaluated.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from datetime import date
from functools import cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from connectors.letters.compose import Deadline, compose
from connectors.letters.errors import RenderLimitExceeded
from connectors.letters.fonts import font_face_css, fonts_for, printed_texts
from connectors.letters.labels import DATE_LABEL, LANGUAGE_NAMES, format_date
from connectors.letters.limits import DEFAULT_LIMITS, Limits
from connectors.letters.model import Letter, Letterhead, RenderedLetter
from connectors.letters.values import Value, read_logo
from schemas.events import TemplatePublished


@cache
def _layout() -> Template:
    env = Environment(
        loader=PackageLoader("connectors.letters", "layouts"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    return env.get_template("letter.html.j2")


def _logo_uri(path: Path | None) -> str | None:
    """The configured logo as a data URI: the HTML letter loads nothing from elsewhere."""
    if path is None:
        return None
    kind, data = read_logo(path)
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def letter_html(
    letter: Letter,
    letterhead: Letterhead,
    *,
    recipient: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    embed_fonts: bool = True,
) -> str:
    """The letter as one HTML document. `embed_fonts=False` leaves out the `@font-face` rules
    (subsets of the fonts, the slow part): for a preview shown inside another page."""
    head = letterhead.lines
    texts = printed_texts(letter, head, recipient)
    fonts = fonts_for(texts)
    html = _layout().render(
        font_faces=font_face_css(fonts, texts) if embed_fonts else "",
        logo=_logo_uri(letterhead.logo),
        font_stack=", ".join(f'"{f.family}"' for f in fonts),
        letter=letter,
        first=letter.parts[0],
        letterhead=letterhead,
        recipient=tuple(recipient),
        language_names=LANGUAGE_NAMES,
        date_labels=DATE_LABEL,
        dates={lang: format_date(letter.letter_date, lang) for lang in letter.languages},
    )
    if len(html) > limits.html_bytes:
        raise RenderLimitExceeded(f"the HTML letter would be larger than {limits.html_bytes} bytes")
    return html


def render_html(
    bundle: TemplatePublished,
    lang: str,
    values: Mapping[str, Value | None],
    letterhead: Letterhead,
    *,
    bilingual: bool = False,
    recipient: Sequence[str] = (),
    letter_date: date | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> RenderedLetter:
    """Render a letter as one HTML document (bilingual: Dutch, then `lang`)."""
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
    html = letter_html(letter, letterhead, recipient=recipient, limits=limits)
    deadline.check()
    return RenderedLetter(letter, html)
