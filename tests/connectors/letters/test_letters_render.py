from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest

from connectors.letters import (
    InvalidValue,
    LanguageUnavailable,
    MissingValue,
    UnknownValue,
    compose,
    render_html,
    render_pdf,
)
from schemas.events import TemplatePublished
from tests.connectors.letters.conftest import (
    BIDI_MARKS,
    HEAD,
    LANGS,
    TEMPLATES,
    VALUES,
    pdf_text,
    poppler_text,
)

LETTER_DATE = date(2026, 4, 17)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("template_id", TEMPLATES)
def test_every_bundle_language_renders_a_personalised_pdf(
    bundles: dict[str, TemplatePublished], template_id: str, lang: str
) -> None:
    values = VALUES[template_id]
    pdf = render_pdf(bundles[template_id], lang, values, HEAD, letter_date=LETTER_DATE)
    assert pdf.startswith(b"%PDF-")
    text = pdf_text(pdf)
    for key in ("case_number", "officer_phone", "contact_email"):
        assert str(values[key]) in text, key
    assert "El Amrani" in text
    assert "Gemeente Den Haag" in text
    assert f"{template_id}@1.0.0" in text  # the footer names the template version


ARABIC_SENTENCES = {
    "we-zijn-je-kwijt": ["فقدنا الاتصال بك", "لقد فقدنا الاتصال بك."],
    "wij-zijn-langs-geweest": ["لقد زرناكم", "نحن قلقون عليكم"],
}


@pytest.mark.parametrize("template_id", TEMPLATES)
def test_arabic_pdf_text_is_in_logical_order_with_the_case_number_intact(
    bundles: dict[str, TemplatePublished], template_id: str
) -> None:
    pdf = render_pdf(bundles[template_id], "ar", VALUES[template_id], HEAD, letter_date=LETTER_DATE)
    text = pdf_text(pdf)
    for sentence in ARABIC_SENTENCES[template_id]:
        assert sentence in text
        assert sentence[::-1] not in text
    assert "2026-0417" in text
    assert "7140-6202" not in text


def test_arabic_html_is_rtl_with_isolated_values(bundles: dict[str, TemplatePublished]) -> None:
    html = render_html(
        bundles["we-zijn-je-kwijt"], "ar", VALUES["we-zijn-je-kwijt"], HEAD, letter_date=LETTER_DATE
    ).html
    assert '<html lang="ar" dir="rtl">' in html
    assert '<section class="letter" lang="ar" dir="rtl">' in html
    assert '<bdi class="value" data-placeholder="case_number">2026-0417</bdi>' in html
    assert '<bdi class="value" data-placeholder="pupil_name">Jan de Vries</bdi>' in html
    # Every inserted value is isolated: no value text outside a <bdi>.
    outside = re.sub(r"<bdi[^>]*>.*?</bdi>", "", html)
    for value in ("2026-0417", "Jan de Vries", "070 353 5454", "El Amrani"):
        assert value not in outside
    assert "1 مايو 2026" in html  # dates are written in the letter's language


def test_the_isolates_around_values_are_not_written_into_the_pdf(
    bundles: dict[str, TemplatePublished],
) -> None:
    # FSI/PDI steer the bidi step; written out as zero-width glyphs they split words for a reader
    # that copies or searches ("kenmerk L<newline>P-2026/0417").
    pdf = render_pdf(bundles["we-zijn-je-kwijt"], "ar", VALUES["we-zijn-je-kwijt"], HEAD)
    for text in (pdf_text(pdf), poppler_text(pdf)):
        assert "\u2068" not in text and "\u2069" not in text
        assert "2026-0417" in text


_PUNCTUATION = ".,:;!?()–-·•،؟\"'"


def _words(text: str) -> list[str]:
    return [w for w in (x.strip(_PUNCTUATION) for x in BIDI_MARKS.sub(" ", text).split()) if w]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("template_id", TEMPLATES)
def test_every_letter_reads_back_word_for_word(
    bundles: dict[str, TemplatePublished], template_id: str, lang: str
) -> None:
    """The words a reader copies out of the PDF are the words of the letter: ligatures and
    right-to-left runs carry /ActualText, so Arabic does not come out with letters reversed."""
    values = VALUES[template_id]
    letter = compose(bundles[template_id], lang, values, letter_date=LETTER_DATE)
    expected = [
        w
        for part in letter.parts
        for r in (*part.subject, *(r for b in part.blocks for item in b.items for r in item))
        for w in _words(r.text)
    ]
    pdf = render_pdf(bundles[template_id], lang, values, HEAD, letter_date=LETTER_DATE)
    got = _words(poppler_text(pdf))
    assert not Counter(expected) - Counter(got)
    if lang != "ar":  # mixed-direction lines come out in an extractor's own order
        remaining = iter(got)
        assert all(any(g == w for g in remaining) for w in expected)


@pytest.mark.parametrize("lang", ["ar", "pl", "bg"])
def test_bilingual_letter_has_dutch_then_the_family_language(
    bundles: dict[str, TemplatePublished], lang: str
) -> None:
    bundle = bundles["we-zijn-je-kwijt"]
    values = VALUES["we-zijn-je-kwijt"]
    rendered = render_html(bundle, lang, values, HEAD, bilingual=True)
    assert rendered.letter.languages == ("nl", lang)
    html = rendered.html
    nl_at = html.index('<section class="letter" lang="nl"')
    other_at = html.index(f'<section class="letter" lang="{lang}"')
    assert nl_at < other_at
    assert "We zijn je kwijt" in html
    text = pdf_text(render_pdf(bundle, lang, values, HEAD, bilingual=True))
    assert "Neem zo snel mogelijk contact met ons op." in text
    marker = {"ar": "فقدنا الاتصال بك", "pl": "Straciliśmy z Tobą kontakt", "bg": "Изгубихме връзка с теб"}
    assert marker[lang] in text
    assert text.index("We zijn je kwijt") < text.index(marker[lang])


def test_optional_blocks_show_only_when_set(bundles: dict[str, TemplatePublished]) -> None:
    bundle = bundles["we-zijn-je-kwijt"]
    full = VALUES["we-zijn-je-kwijt"]
    with_school = render_html(bundle, "nl", full, HEAD).html
    assert "Johan de Witt College" in with_school and "vóór" in with_school
    bare = {k: v for k, v in full.items() if k not in ("school_name", "respond_before")}
    without = render_html(bundle, "nl", bare, HEAD).html
    assert "Je school" not in without and "vóór" not in without
    assert "We zijn je kwijt. We willen" in without  # no doubled space left behind


def test_value_errors_name_the_placeholder_never_the_value(
    bundles: dict[str, TemplatePublished],
) -> None:
    bundle = bundles["we-zijn-je-kwijt"]
    values = dict(VALUES["we-zijn-je-kwijt"])
    missing = {k: v for k, v in values.items() if k != "officer_phone"}
    with pytest.raises(MissingValue, match=r"\(\(officer_phone\)\)") as e:
        render_html(bundle, "nl", missing, HEAD)
    assert e.value.field == "officer_phone"
    with pytest.raises(UnknownValue, match=r"\(\(bsn\)\)"):
        render_html(bundle, "nl", values | {"bsn": "111222333"}, HEAD)
    with pytest.raises(InvalidValue, match=r"\(\(officer_phone\)\)") as e:
        render_html(bundle, "nl", values | {"officer_phone": "call me maybe"}, HEAD)
    assert "call me" not in str(e.value)
    with pytest.raises(InvalidValue, match=r"\(\(respond_before\)\)"):
        render_html(bundle, "nl", values | {"respond_before": "next week"}, HEAD)
    with pytest.raises(InvalidValue, match=r"\(\(case_number\)\)"):
        render_html(bundle, "nl", values | {"case_number": "2026 0417; DROP"}, HEAD)
    with pytest.raises(LanguageUnavailable):
        render_html(bundle, "de", values, HEAD)


@pytest.mark.parametrize(("lang", "date_text"), [("pl", "1 maja 2026 r."), ("bg", "1 май 2026 г.")])
def test_a_date_that_ends_in_a_full_stop_is_not_followed_by_a_second(
    bundles: dict[str, TemplatePublished], lang: str, date_text: str
) -> None:
    values = VALUES["we-zijn-je-kwijt"]
    letter = compose(bundles["we-zijn-je-kwijt"], lang, values, letter_date=LETTER_DATE)
    text = "".join(r.text for b in letter.parts[0].blocks for item in b.items for r in item)
    assert date_text in text
    assert date_text + "." not in text and ".." not in text
    pdf = pdf_text(render_pdf(bundles["we-zijn-je-kwijt"], lang, values, HEAD, letter_date=LETTER_DATE))
    assert date_text + "." not in pdf.replace("\u2069", "")
