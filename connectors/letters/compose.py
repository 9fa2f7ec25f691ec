"""Compose a letter: check language, template and values, then put the values in."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import date
from typing import Literal

from connectors.letters.errors import (
    LanguageUnavailable,
    MissingValue,
    RenderLimitExceeded,
    UndeclaredPlaceholder,
)
from connectors.letters.limits import DEFAULT_LIMITS, Limits
from connectors.letters.model import LINE_BREAK, Block, Letter, LetterPart, Run
from connectors.letters.syntax import Conditional, Inline, LineBreak, ParsedText, Slot, Text, parse_text
from connectors.letters.values import Checked, Value, check_values
from schemas.events import TemplatePublished
from schemas.fields import RTL_LANGUAGES


class Deadline:
    """A budget of CPU time for one letter, spent by this thread alone: on a busy machine a
    long, legitimate letter takes longer by the clock but not by the processor, and only a
    letter that makes rendering itself expensive runs out."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.thread_time() + seconds

    def check(self) -> None:
        if time.thread_time() > self.at:
            raise RenderLimitExceeded(f"rendering took more than {self.seconds:g} s of processor time")


def parse_language(bundle: TemplatePublished, lang: str, limits: Limits = DEFAULT_LIMITS) -> ParsedText:
    """Parse one language of a bundle and check it uses declared placeholders only."""
    text = bundle.languages.get(lang)  # type: ignore[call-overload]
    if text is None:
        raise LanguageUnavailable(
            f"template {bundle.template_id}@{bundle.version} has no {lang!r} text", field="lang"
        )
    parsed = parse_text(text.subject, text.body, f"{bundle.template_id} ({lang})", limits)
    declared = {p.name for p in bundle.placeholders}
    undeclared = sorted(parsed.names - declared)
    if undeclared:
        at = first_use(text.body, undeclared[0])
        raise UndeclaredPlaceholder(
            f"{bundle.template_id} ({lang}) uses undeclared placeholder(s) "
            + ", ".join(f"(({n}))" for n in undeclared),
            field=undeclared[0],
            part="subject" if at is None else "body",
            line=1 if at is None else at[0],
            column=None if at is None else at[1],
        )
    return parsed


def first_use(body: str, name: str) -> tuple[int, int] | None:
    """Line and column (1-based) of the first `((name` in a body; None if only the subject uses it."""
    found = re.search(r"\(\(" + re.escape(name) + r"(?![a-z0-9_])", body.replace("\r\n", "\n"))
    if found is None:
        return None
    before = body.replace("\r\n", "\n")[: found.start()]
    return before.count("\n") + 1, found.start() - (before.rfind("\n") + 1) + 1


def _value(name: str, values: dict[str, Checked], lang: str, bold: bool) -> Run:
    checked = values.get(name)
    if checked is None:
        raise MissingValue(
            f"placeholder (({name})) is used outside an optional block but has no value",
            field=name,
        )
    return Run(checked.text(lang), bold, placeholder=name)


def _runs(inlines: tuple[Inline, ...], values: dict[str, Checked], lang: str) -> tuple[Run, ...]:
    out: list[Run] = []
    for node in inlines:
        if isinstance(node, Text):
            out.append(Run(node.text, node.bold))
        elif isinstance(node, Slot):
            out.append(_value(node.name, values, lang, node.bold))
        elif isinstance(node, Conditional):
            if node.name in values:
                for part in node.parts:
                    if isinstance(part, Text):
                        out.append(Run(part.text, part.bold))
                    else:
                        out.append(_value(part.name, values, lang, part.bold))
        elif isinstance(node, LineBreak):
            out.append(LINE_BREAK)
    return _tidy(out)


def _tidy(runs: list[Run]) -> tuple[Run, ...]:
    """Merge adjacent plain runs of the same weight, and drop the doubled or dangling spaces
    that a left-out optional block leaves behind."""
    merged: list[Run] = []
    for r in runs:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and r.placeholder is None
            and prev.placeholder is None
            and r.kind == prev.kind == "text"
            and r.bold == prev.bold
        ):
            merged[-1] = Run(prev.text + r.text, r.bold)
        else:
            merged.append(r)
    tidy: list[Run] = []
    for i, r in enumerate(merged):
        if r.placeholder is None and r.kind == "text":
            text = r.text
            prev_text = tidy[-1].text if tidy else "\n"
            if prev_text.endswith(".") and text.startswith(".") and not text.startswith(".."):
                text = text[1:]  # "1 maja 2026 r." + "." is one full stop, not two
            if prev_text.endswith((" ", "\n")):
                text = text.lstrip(" ")
            nxt = merged[i + 1] if i + 1 < len(merged) else None
            if nxt is None or nxt.kind == "break":
                text = text.rstrip(" ")
            while "  " in text:
                text = text.replace("  ", " ")
            if not text:
                continue
            r = Run(text, r.bold)
        tidy.append(r)
    return tuple(tidy)


def _part(
    bundle: TemplatePublished,
    lang: str,
    parsed: ParsedText,
    values: dict[str, Checked],
    deadline: Deadline,
) -> LetterPart:
    blocks: list[Block] = []
    for block in parsed.blocks:
        items = tuple(_runs(item, values, lang) for item in block.items)
        items = tuple(i for i in items if i)
        if items:
            blocks.append(Block(block.kind, items, block.level))
        deadline.check()
    direction: Literal["ltr", "rtl"] = "rtl" if lang in RTL_LANGUAGES else "ltr"
    return LetterPart(lang, direction, _runs(parsed.subject, values, lang), tuple(blocks))


def compose(
    bundle: TemplatePublished,
    lang: str,
    values: Mapping[str, Value | None],
    *,
    bilingual: bool = False,
    letter_date: date | None = None,
    limits: Limits = DEFAULT_LIMITS,
    deadline: Deadline | None = None,
) -> Letter:
    """Check everything and put the values in. A bilingual letter is Dutch, then `lang`
    (for `lang="nl"` it is simply the Dutch letter)."""
    deadline = deadline or Deadline(limits.seconds)
    langs = ("nl", lang) if bilingual and lang != "nl" else (lang,)
    parsed = [parse_language(bundle, lg, limits) for lg in langs]
    checked = check_values(bundle.placeholders, values, limits)
    parts = tuple(_part(bundle, lg, p, checked, deadline) for lg, p in zip(langs, parsed, strict=True))
    size = sum(len(r.text) for part in parts for b in part.blocks for item in b.items for r in item)
    if size > limits.output_chars:
        raise RenderLimitExceeded(f"the letter would be longer than {limits.output_chars} characters")
    return Letter(
        template_id=bundle.template_id,
        version=bundle.version,
        title=bundle.title,
        letter_date=letter_date or date.today(),
        parts=parts,
    )
