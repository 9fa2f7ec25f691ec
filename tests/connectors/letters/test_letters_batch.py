"""A batch gives one result per row, in row order, whether one process renders it or several;
a row that cannot be rendered says why and the others are still rendered."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.letters import render_pdf
from connectors.letters.batch import BatchRow, LetterBatch, render_batch
from schemas.events import TemplatePublished
from tests.connectors.letters.conftest import HEAD, VALUES, poppler_text

LETTER_DATE = date(2026, 4, 17)
TEMPLATE = "we-zijn-je-kwijt"


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_come_in_row_order_with_failures_in_their_place(
    bundles: dict[str, TemplatePublished], jobs: int
) -> None:
    values = VALUES[TEMPLATE]
    rows = [
        BatchRow("ar", values),
        BatchRow("pl", values | {"pupil_name": "Łucja Wiśniewska"}),
        BatchRow("xx", values),  # no such language
        BatchRow("bg", {k: v for k, v in values.items() if k != "case_number"}),  # a required value missing
        BatchRow("nl", values, recipient=("Jan de Vries", "Proefstraat 12", "2511 AB  DEN HAAG")),
    ]
    batch = LetterBatch(bundles[TEMPLATE], HEAD, letter_date=LETTER_DATE)
    results = list(render_batch(batch, rows, jobs=jobs))
    assert [r.failure is None for r in results] == [True, True, False, False, True]
    assert results[2].failure is not None and results[2].failure.reason == "language_unavailable"
    assert results[3].failure is not None and results[3].failure.field == "case_number"
    for row, result in zip(rows, results, strict=True):
        if result.content is None:
            continue
        alone = render_pdf(
            bundles[TEMPLATE], row.lang, row.values, HEAD, recipient=row.recipient, letter_date=LETTER_DATE
        )
        assert poppler_text(result.content) == poppler_text(alone)
        assert result.languages == (row.lang,)


def test_an_html_batch(bundles: dict[str, TemplatePublished]) -> None:
    batch = LetterBatch(bundles[TEMPLATE], HEAD, fmt="html", bilingual=True, letter_date=LETTER_DATE)
    (result,) = render_batch(batch, [BatchRow("tr", VALUES[TEMPLATE])])
    assert result.content is not None and result.content.startswith(b"<!DOCTYPE html>")
    assert result.languages == ("nl", "tr")
