"""Hostile templates and values: refused with a clear reason, or rendered as inert text."""

from __future__ import annotations

import time

import pytest

from connectors.letters import (
    InvalidValue,
    Limits,
    RenderLimitExceeded,
    TemplateInvalid,
    TemplateSyntaxError,
    TemplateTooLarge,
    UndeclaredPlaceholder,
    render_html,
    render_pdf,
)
from connectors.letters.compose import Deadline
from schemas.events import Placeholder, TemplatePublished, TemplateText
from tests.connectors.letters.conftest import HEAD, pdf_text

DECLARED = [
    Placeholder(name="pupil_name", type="text"),
    Placeholder(name="case_number", type="case_number"),
    Placeholder(name="note", type="text", required=False),
]
VALUES = {"pupil_name": "Jan de Vries", "case_number": "2026-0417"}


def bundle(body: str, subject: str = "Onderwerp ((case_number))") -> TemplatePublished:
    # model_construct: the renderer must not rely on the payload model having bounded sizes.
    text = TemplateText.model_construct(direction="ltr", subject=subject, body=body)
    return TemplatePublished.model_construct(
        template_id="hostile",
        version="1.0.0",
        publisher="ingrado",
        title="Hostile",
        languages={"nl": text},
        placeholders=DECLARED,
    )


INERT = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{0.__globals__} {pupil_name.__class__} %s %(pupil_name)s $pupil_name ${pupil_name}",
    "<script>alert(1)</script> <img src=x onerror=alert(1)> &amp; &lt;",
    "[klik hier](https://evil.example) __onderstreept__ ~~weg~~ --doorgestreept-- {nb}",
    "(((pupil_name))) ))) ?? ** Beste",
]


@pytest.mark.parametrize("body", INERT)
def test_code_like_template_text_is_rendered_as_plain_text(body: str) -> None:
    b = bundle(f"Beste ((pupil_name)),\n\n{body}\n")
    html = render_html(b, "nl", VALUES, HEAD).html
    assert "<script>" not in html and "<img" not in html
    assert "Jan de Vries" in html
    text = pdf_text(render_pdf(b, "nl", VALUES, HEAD))
    assert "Jan de Vries" in text
    if "klik hier" in body:
        assert "[klik hier](https://evil.example)" in text
        assert "__onderstreept__" in text and "{nb}" in text
    if "((" not in body:
        assert body.strip() in text  # printed exactly as written
    else:
        assert "(Jan de Vries) ))) ?? ** Beste" in text


REFUSED: list[tuple[str, type[Exception], str]] = [
    ("Hallo ((__class__))", TemplateSyntaxError, "placeholder name"),
    ("Hallo ((pupil_name.__class__))", TemplateSyntaxError, "expected '))' or '??'"),
    ("Hallo ((Pupil_Name))", TemplateSyntaxError, "lower-case"),
    ("Hallo (( pupil_name ))", TemplateSyntaxError, "expected a placeholder name"),
    ("Hallo ((pupil_name", TemplateSyntaxError, "expected '))'"),
    ("Hallo ((note??((note??x))))", TemplateSyntaxError, "cannot be nested"),
    ("Hallo ((note??niet gesloten", TemplateSyntaxError, "not closed"),
    ("Hallo ((bsn))", UndeclaredPlaceholder, "((bsn))"),
    ("Hallo ((note??je bsn is ((bsn))))", UndeclaredPlaceholder, "((bsn))"),
    ("Hallo \u202egnirts((pupil_name))", TemplateSyntaxError, "U+202E"),
    ("Hallo \x1b[31m rood", TemplateSyntaxError, "U+001B"),
    ("Hallo \x00", TemplateSyntaxError, "U+0000"),
    ("Hallo \ue000vet", TemplateSyntaxError, "U+E000"),
    ("Hallo\rdaar", TemplateSyntaxError, "carriage return"),
    ("x" * (64 * 1024 + 1), TemplateTooLarge, "larger than"),
    ("é" * (40 * 1024), TemplateTooLarge, "larger than"),  # 80 KiB in UTF-8
    ("((pupil_name))" * 201, TemplateTooLarge, "more than 200 placeholders"),
    ("\n\n".join(["alinea"] * 600), TemplateTooLarge, "blocks"),
]


@pytest.mark.parametrize(("body", "error", "reason"), REFUSED, ids=range(len(REFUSED)))
def test_hostile_template_is_refused_with_a_reason(body: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error) as e:
        render_html(bundle(body), "nl", VALUES, HEAD)
    assert isinstance(e.value, TemplateInvalid)
    assert reason in str(e.value)


def test_syntax_errors_give_line_and_column() -> None:
    with pytest.raises(TemplateSyntaxError, match=r"line 3, column 9"):
        render_html(bundle("Beste,\n\nHallo ((!x))"), "nl", VALUES, HEAD)


def test_repetition_is_bounded_in_time_and_output() -> None:
    # The longest allowed value, many times over: refused by the output bound, fast.
    body = "\n".join(["((pupil_name)) " * 90] * 2)
    limits = Limits(output_chars=10_000)
    start = time.monotonic()
    with pytest.raises(RenderLimitExceeded):
        render_html(bundle(body), "nl", VALUES | {"pupil_name": "x" * 200}, HEAD, limits=limits)
    assert time.monotonic() - start < 2


def test_long_but_legal_letter_stays_within_the_page_bound() -> None:
    body = "\n\n".join(["Een alinea die steeds terugkomt, ((pupil_name))."] * 199)
    with pytest.raises(RenderLimitExceeded, match="pages"):
        render_pdf(bundle(body), "nl", VALUES, HEAD, limits=Limits(pdf_pages=3))


def test_render_time_is_bounded() -> None:
    with pytest.raises(RenderLimitExceeded, match="processor time"):
        render_pdf(bundle("Beste ((pupil_name))\n\n" * 50), "nl", VALUES, HEAD, limits=Limits(seconds=0))


def test_the_budget_is_processor_time_not_the_clock() -> None:
    # A busy machine makes rendering slower by the clock: that alone must not fail a letter.
    deadline = Deadline(0.05)
    time.sleep(0.2)  # the clock runs, this thread's processor time hardly does
    deadline.check()
    spin = time.thread_time() + 0.1
    while time.thread_time() < spin:  # spending processor time is what runs the budget out
        pass
    with pytest.raises(RenderLimitExceeded):
        deadline.check()


INJECTIONS = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "**vet** [link](https://evil.example) __x__ {nb} \\** %s {0}",
    "{{ 7*7 }} {% raw %}",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_values_are_escaped_in_html_and_literal_in_pdf(name: str) -> None:
    b = bundle("Beste ((pupil_name)),\n\n**Let op** ((case_number))")
    html = render_html(b, "nl", VALUES | {"pupil_name": name}, HEAD).html
    assert "<script>" not in html and "<img" not in html
    assert "49" not in html.split("</style>", 1)[1]  # (the embedded fonts' base64 may hold "49")
    text = pdf_text(render_pdf(b, "nl", VALUES | {"pupil_name": name}, HEAD))
    assert name in text  # every character printed as itself, nothing interpreted


@pytest.mark.parametrize(
    "value",
    [
        "Jan\u202e seirV",
        "Jan\nde Vries",
        "Jan\x00",
        "Jan\ue000",
        "x" * 201,
        "   ",
        "Jan\u2069",
        "Jan\ud800",  # a lone surrogate: not text, and not writable as UTF-8
    ],
)
def test_values_with_control_characters_or_oversize_are_refused(value: str) -> None:
    with pytest.raises(InvalidValue, match=r"\(\(pupil_name\)\)") as e:
        render_html(bundle("Beste ((pupil_name))"), "nl", VALUES | {"pupil_name": value}, HEAD)
    assert value.strip() == "" or value[:3] not in str(e.value).replace("pupil_name", "")


def test_letterhead_lines_obey_the_same_rules() -> None:
    from dataclasses import replace

    with pytest.raises(InvalidValue, match="letterhead"):
        render_pdf(bundle("Beste ((pupil_name))"), "nl", VALUES, replace(HEAD, name="Den Haag\ue000"))
