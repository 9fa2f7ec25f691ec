"""A draft in the template studio: every problem with its language, part and line."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.letters import load_shared_bundle
from connectors.letters.drafts import check_draft


@pytest.fixture
def draft() -> dict[str, Any]:
    return load_shared_bundle("we-zijn-je-kwijt").model_dump(mode="json")


def _body_with(body: str, line: int, text: str) -> str:
    lines = body.split("\n")
    lines.insert(line - 1, text)
    return "\n".join(lines)


def test_a_good_draft_has_no_problem_and_is_the_bundle(draft: dict[str, Any]) -> None:
    checked = check_draft(draft)
    assert checked.problems == ()
    assert checked.bundle == load_shared_bundle("we-zijn-je-kwijt")


def test_an_undeclared_placeholder_is_shown_at_its_line_in_its_language(draft: dict[str, Any]) -> None:
    ar = draft["languages"]["ar"]
    ar["body"] = _body_with(ar["body"], 5, "رقم المواطن: ((bsn))")
    checked = check_draft(draft)
    assert checked.bundle is None
    [problem] = checked.problems
    assert (problem.lang, problem.part, problem.line, problem.column) == ("ar", "body", 5, 14)
    assert "((bsn))" in problem.message
    assert checked.at("ar", "body") == [problem] and checked.at("nl", "body") == []


def test_every_language_shows_its_own_first_problem(draft: dict[str, Any]) -> None:
    pl = draft["languages"]["pl"]
    pl["body"] = _body_with(pl["body"], 3, "Cześć ((pupil_name")
    tr = draft["languages"]["tr"]
    tr["subject"] = "Merhaba \u202e((pupil_name))"
    by_lang = {p.lang: p for p in check_draft(draft).problems}
    assert set(by_lang) == {"pl", "tr"}
    assert (by_lang["pl"].part, by_lang["pl"].line) == ("body", 3)
    assert (by_lang["tr"].part, by_lang["tr"].line, by_lang["tr"].column) == ("subject", 1, 9)
    assert "U+202E" in by_lang["tr"].message


def test_bundle_fields_are_checked_too(draft: dict[str, Any]) -> None:
    draft["title"] = "Brief \u202e"
    draft["placeholders"][0]["sample"] = "Sam\nde Boer"
    draft["placeholders"].append({"name": "Bad Name", "type": "text"})
    draft["placeholders"][1]["sample"] = "2026 0417"  # a valid text, but no case number
    parts = {p.part for p in check_draft(draft).problems}
    assert parts == {"title", "placeholders.0.sample", "placeholders.1.sample", "placeholders.7.name"}
    draft["title"] = "Brief"
    draft["placeholders"][0]["sample"] = "Sam de Boer"
    del draft["placeholders"][7]
    [problem] = check_draft(draft).problems
    assert problem.part == "placeholders.1.sample" and "letters, digits" in problem.message


def test_the_contracts_rules_come_after_the_texts(draft: dict[str, Any]) -> None:
    draft["version"] = "1.1"
    del draft["languages"]["nl"]
    messages = [p.message for p in check_draft(draft).problems]
    assert any(m.startswith("version:") for m in messages), messages
    assert any("Dutch (nl)" in m for m in messages), messages
