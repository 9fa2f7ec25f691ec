"""Letters from shared templates, rendered locally: the connector holds the personal data.

Public API::

    from connectors.letters import Letterhead, load_shared_bundle, render_html, render_pdf

    bundle = load_shared_bundle("we-zijn-je-kwijt")          # or a received template.published
    head = Letterhead(name="Gemeente Den Haag", department="Leerlingzaken",
                      return_address=("Postbus 12652", "2500 DP Den Haag"))
    values = {"pupil_name": "Noor", "case_number": "2026-0417", ...}
    html = render_html(bundle, "ar", values, head, bilingual=True).html
    pdf = render_pdf(bundle, "ar", values, head, bilingual=True)

Templates are untrusted (see `syntax`); values are checked against the declared placeholders
(see `values`); both layouts escape and bidi-isolate every inserted value. Errors: `errors`.
"""

from connectors.letters.bundle import bundle_diff, load_bundle, load_shared_bundle, shared_bundle_dir
from connectors.letters.compose import compose
from connectors.letters.errors import (
    BundleInvalid,
    InvalidValue,
    LanguageUnavailable,
    LetterError,
    MissingValue,
    RenderLimitExceeded,
    TemplateInvalid,
    TemplateSyntaxError,
    TemplateTooLarge,
    UndeclaredPlaceholder,
    UnknownValue,
    ValuesInvalid,
)
from connectors.letters.html import letter_html, render_html
from connectors.letters.limits import DEFAULT_LIMITS, Limits
from connectors.letters.model import Letter, Letterhead, LetterPart, RenderedLetter
from connectors.letters.pdf import letter_pdf, render_pdf
from connectors.letters.values import sample_values

__all__ = [
    "DEFAULT_LIMITS",
    "BundleInvalid",
    "InvalidValue",
    "LanguageUnavailable",
    "Letter",
    "LetterError",
    "LetterPart",
    "Letterhead",
    "Limits",
    "MissingValue",
    "RenderLimitExceeded",
    "RenderedLetter",
    "TemplateInvalid",
    "TemplateSyntaxError",
    "TemplateTooLarge",
    "UndeclaredPlaceholder",
    "UnknownValue",
    "ValuesInvalid",
    "bundle_diff",
    "compose",
    "letter_html",
    "letter_pdf",
    "load_bundle",
    "load_shared_bundle",
    "render_html",
    "render_pdf",
    "sample_values",
    "shared_bundle_dir",
]
