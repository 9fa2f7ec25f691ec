"""A bundle being written (the template studio): every problem the publisher's checks find, each
with the language, the part (subject or body) and the line where it is, so an editor can show it
at that line; and the bundle itself once there are none.

`check_bundle` stops at the first problem (what a publish or a receipt needs); a draft is
checked language by language so each language shows its own first problem at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from connectors.letters.bundle import check_bundle
from connectors.letters.compose import first_use
from connectors.letters.errors import InvalidValue, LetterError, TemplateInvalid
from connectors.letters.limits import DEFAULT_LIMITS, Limits
from connectors.letters.syntax import FORBIDDEN, parse_text
from connectors.letters.values import check_samples
from schemas.events import Placeholder, TemplatePublished

__all__ = ["Draft", "Problem", "check_draft"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a draft. `lang` is None for the bundle's own fields (`part` then
    names the field, e.g. "version" or "placeholders.2.sample")."""

    message: str
    lang: str | None = None
    part: str | None = None
    line: int | None = None
    column: int | None = None


@dataclass(frozen=True)
class Draft:
    problems: tuple[Problem, ...]
    bundle: TemplatePublished | None  # set when there is no problem

    def at(self, lang: str, part: str) -> list[Problem]:
        return [p for p in self.problems if p.lang == lang and p.part == part]


def _placeholders(raw: Any) -> tuple[list[Placeholder], list[Problem]]:
    declared: list[Placeholder] = []
    problems: list[Problem] = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            declared.append(Placeholder.model_validate(item))
        except ValidationError as e:
            first = e.errors(include_input=False)[0]
            where = ".".join(str(x) for x in ("placeholders", i, *first["loc"]))
            problems.append(Problem(f"{where}: {first['msg']}", part=where))
    return declared, problems


def _language(lang: str, text: Any, names: set[str], limits: Limits) -> list[Problem]:
    if not isinstance(text, Mapping):
        return [Problem("a language needs a subject and a body", lang=lang)]
    subject, body = text.get("subject"), text.get("body")
    if not isinstance(subject, str) or not subject.strip():
        return [Problem("the subject is empty", lang=lang, part="subject", line=1)]
    if not isinstance(body, str) or not body.strip():
        return [Problem("the body is empty", lang=lang, part="body", line=1)]
    try:
        parsed = parse_text(subject, body, lang, limits)
    except TemplateInvalid as e:
        return [Problem(e.message, lang=lang, part=e.part, line=e.line, column=e.column)]
    problems = []
    for name in sorted(parsed.names - names):
        at = first_use(body, name)
        problems.append(
            Problem(
                f"(({name})) is not a declared placeholder",
                lang=lang,
                part="subject" if at is None else "body",
                line=1 if at is None else at[0],
                column=None if at is None else at[1],
            )
        )
    return problems


def check_draft(data: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Draft:
    """Check a draft given as a `template.published` payload (as JSON-like data)."""
    problems: list[Problem] = []
    declared, bad = _placeholders(data.get("placeholders", []))
    problems.extend(bad)
    # A placeholder whose declaration has a problem is still declared for the texts' check:
    # its problem is shown once, at the declaration, not again at every use.
    raw = data.get("placeholders", [])
    names = {p.name for p in declared} | {
        str(item["name"])
        for item in (raw if isinstance(raw, list) else [])
        if isinstance(item, Mapping) and "name" in item
    }
    languages = data.get("languages")
    if not isinstance(languages, Mapping) or not languages:
        problems.append(Problem("a template needs at least its Dutch (nl) text", part="languages"))
        languages = {}
    for lang, text in languages.items():
        problems.extend(_language(str(lang), text, names, limits))
    title = data.get("title")
    if isinstance(title, str) and FORBIDDEN.search(title):
        problems.append(
            Problem("the title contains a bidi control, formatting or private-use character", part="title")
        )
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        placeholder = next(
            (p for p in declared if isinstance(item, Mapping) and p.name == item.get("name")), None
        )
        try:
            check_samples([placeholder] if placeholder else [], limits)
        except InvalidValue as e:
            problems.append(Problem(f"sample {e.message}", part=f"placeholders.{i}.sample"))
    if problems:
        return Draft(tuple(problems), None)
    try:  # what the checks above do not cover: the contract's own rules (version, directions...)
        bundle = TemplatePublished.model_validate(data)
    except ValidationError as e:
        for err in e.errors(include_input=False):
            loc = [str(x) for x in err["loc"]]
            in_lang = len(loc) >= 2 and loc[0] == "languages" and loc[1] in languages
            problems.append(
                Problem(
                    f"{'.'.join(loc) or 'bundle'}: {err['msg']}",
                    lang=loc[1] if in_lang else None,
                    part=(loc[2] if len(loc) > 2 else None) if in_lang else ".".join(loc) or None,
                )
            )
        return Draft(tuple(problems), None)
    try:
        check_bundle(bundle, limits)
    except LetterError as e:  # a safety net: the checks above should have said it already
        return Draft((Problem(e.message),), None)
    return Draft((), bundle)
