"""The template language: a strict, hand-written parser for untrusted template text.

Templates come from another organisation over the hub, so they are data, never code. The
language is GOV.UK Notify's, cut down to what a letter needs::

    text       := subject line + body (see `bundle.split_text_file` for the file format)
    body       := block ( blank-line+ block )*
    block      := heading | bullet-list | paragraph
    heading    := "#"{1,3} " " inline                  one line
    bullet     := ("- " | "* ") inline                  consecutive bullets form one list
    paragraph  := inline ( NL inline )*                 a single newline is a line break
    inline     := ( text | "**" | placeholder | optional )*
    placeholder:= "((" name "))"
    optional   := "((" name "??" ( text | placeholder )* "))"     shown only when name has a value
    name       := [a-z][a-z0-9_]{0,63}

`**` toggles bold within a block (an unpaired one is literal text; inside an optional block it
is literal too, so leaving the block out cannot unbalance the rest). `(((name)))` is a literal
parenthesis around a placeholder. Any other `((` is a syntax error, reported with line and
column. Nothing is evaluated: `{{ x.__class__ }}`, `{0.__globals__}` and `%s` are plain text.

Why not Jinja (even sandboxed): the sandbox is a deny-list over a Turing-complete language
whose escapes have been found repeatedly, and its loops and filters make output size and time
hard to bound. This grammar has no expressions, no loops and nesting depth one, so parsing
and rendering are linear in the template size, which is itself bounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from connectors.letters.errors import TemplateSyntaxError, TemplateTooLarge
from connectors.letters.limits import DEFAULT_LIMITS, Limits

__all__ = [
    "Block",
    "Conditional",
    "ParsedText",
    "Slot",
    "Text",
    "check_text",
    "parse_text",
]

# C0/C1 controls (but not \n and \t), bidi embeddings/overrides/isolates (a template must not
# reorder what a value shows: we isolate values ourselves), line/paragraph separators, private
# use (we use U+E000.. internally), interlinear annotation, BOM, noncharacters and lone
# surrogates (not text at all: they cannot even be written out as UTF-8).
FORBIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff"
    "\ue000-\uf8ff\ufdd0-\ufdef\ufeff\ufff9-\ufffb\ufffe\uffff"
    "\U000f0000-\U0010ffff]"
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VALID_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_SPECIAL = re.compile(r"\(\(|\*\*")
_OPTIONAL_SPECIAL = re.compile(r"\(\(|\)\)")
_HEADING = re.compile(r"(#{1,3})[ \t]+(\S.*)")
_BULLET = re.compile(r"[-*•][ \t]+(\S.*)")


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    bold: bool = False


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    bold: bool = False


@dataclass(frozen=True, slots=True)
class Conditional:
    name: str
    parts: tuple[Text | Slot, ...]
    bold: bool = False


@dataclass(frozen=True, slots=True)
class LineBreak:
    pass


Inline = Text | Slot | Conditional | LineBreak
_Bold = Literal["**"]


@dataclass(frozen=True, slots=True)
class Block:
    kind: Literal["paragraph", "heading", "list"]
    items: tuple[tuple[Inline, ...], ...]  # one item unless kind == "list"
    level: int = 0


@dataclass(frozen=True, slots=True)
class ParsedText:
    subject: tuple[Inline, ...]
    blocks: tuple[Block, ...]
    names: frozenset[str]


class _Parser:
    def __init__(self, where: str, limits: Limits, part: str) -> None:
        self.where = where
        self.part = part
        self.limits = limits
        self.names: set[str] = set()
        self.uses = 0

    def fail(self, message: str, line: int, col: int) -> TemplateSyntaxError:
        return TemplateSyntaxError(
            f"{self.where}, line {line}, column {col}: {message}", part=self.part, line=line, column=col
        )

    def _use(self, name: str, line: int, col: int) -> None:
        if not _VALID_NAME.fullmatch(name):
            raise self.fail(
                f"placeholder name {name[:64]!r} must be lower-case letters, digits and _,"
                " starting with a letter (at most 64 characters)",
                line,
                col,
            )
        self.uses += 1
        if self.uses > self.limits.placeholders:
            raise TemplateTooLarge(f"{self.where}: more than {self.limits.placeholders} placeholders")
        self.names.add(name)

    def _name_at(self, s: str, i: int, line: int) -> tuple[str, int]:
        m = _NAME.match(s, i)
        if not m:
            raise self.fail("expected a placeholder name after '(('", line, i + 1)
        self._use(m.group(), line, i + 1)
        return m.group(), m.end()

    def _placeholder(self, s: str, i: int, line: int) -> tuple[Slot | Conditional, int]:
        name, j = self._name_at(s, i + 2, line)
        if s.startswith("))", j):
            return Slot(name), j + 2
        if not s.startswith("??", j):
            raise self.fail(f"expected '))' or '??' after (({name}", line, j + 1)
        parts: list[Text | Slot] = []
        k = j + 2
        while True:
            m = _OPTIONAL_SPECIAL.search(s, k)
            if m is None:
                raise self.fail(f"optional block (({name}?? is not closed on its line", line, i + 1)
            start = m.start()
            if s.startswith("))", start):
                if start > k:
                    parts.append(Text(s[k:start]))
                return Conditional(name, tuple(parts)), start + 2
            if s.startswith("(((", start):
                parts.append(Text(s[k : start + 1]))
                k = start + 1
                continue
            if start > k:
                parts.append(Text(s[k:start]))
            inner, k = self._name_at(s, start + 2, line)
            if s.startswith("??", k):
                raise self.fail("optional blocks cannot be nested", line, k + 1)
            if not s.startswith("))", k):
                raise self.fail(f"expected '))' after (({inner}", line, k + 1)
            parts.append(Slot(inner))
            k += 2

    def inline(self, s: str, line: int, col0: int = 0) -> list[Inline | _Bold]:
        out: list[Inline | _Bold] = []
        i = 0
        while True:
            m = _SPECIAL.search(s, i)
            if m is None:
                if i < len(s):
                    out.append(Text(s[i:]))
                return out
            start = m.start()
            if s.startswith("**", start):
                if start > i:
                    out.append(Text(s[i:start]))
                out.append("**")
                i = start + 2
            elif s.startswith("(((", start):
                out.append(Text(s[i : start + 1]))
                i = start + 1
            else:
                if start > i:
                    out.append(Text(s[i:start]))
                try:
                    node, i = self._placeholder(s, start, line)
                except TemplateSyntaxError:
                    raise
                out.append(node)

    def block(self, lines: list[tuple[int, str]]) -> tuple[Inline, ...]:
        """Parse a block's lines into inlines, pairing `**` and resolving bold."""
        tokens: list[Inline | _Bold] = []
        for n, (lineno, text) in enumerate(lines):
            if n:
                tokens.append(LineBreak())
            tokens.extend(self.inline(text, lineno))
        return _resolve_bold(tokens)


def _resolve_bold(tokens: list[Inline | _Bold]) -> tuple[Inline, ...]:
    toggles = sum(1 for t in tokens if t == "**")
    unpaired_last = toggles % 2 == 1
    seen = 0
    bold = False
    out: list[Inline] = []
    for t in tokens:
        if t == "**":
            seen += 1
            if unpaired_last and seen == toggles:
                out.append(Text("**", bold))
            else:
                bold = not bold
            continue
        if isinstance(t, Text):
            out.append(Text(t.text, bold))
        elif isinstance(t, Slot):
            out.append(Slot(t.name, bold))
        elif isinstance(t, Conditional):
            out.append(Conditional(t.name, tuple(_with_bold(p, bold) for p in t.parts), bold))
        else:
            out.append(t)
    return tuple(out)


def _with_bold(p: Text | Slot, bold: bool) -> Text | Slot:
    return Text(p.text, bold) if isinstance(p, Text) else Slot(p.name, bold)


def check_text(
    text: str, where: str, limits: Limits, *, max_bytes: int | None = None, part: str | None = None
) -> str:
    """Bound the size and refuse control/formatting characters; returns `text` with CRLF→LF."""
    max_bytes = max_bytes or limits.template_bytes
    if len(text) > max_bytes:
        raise TemplateTooLarge(f"{where} is larger than {max_bytes} bytes")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise TemplateSyntaxError(f"{where} is not valid Unicode text") from None
    if size > max_bytes:
        raise TemplateTooLarge(f"{where} is larger than {max_bytes} bytes")
    text = text.replace("\r\n", "\n").replace("\t", " ")
    if "\r" in text:
        raise TemplateSyntaxError(f"{where}: a carriage return without a line feed is not allowed")
    m = FORBIDDEN.search(text)
    if m:
        before = text[: m.start()]
        line = before.count("\n") + 1
        col = m.start() - (before.rfind("\n") + 1) + 1
        raise TemplateSyntaxError(
            f"{where}, line {line}, column {col}: control or formatting character"
            f" U+{ord(m.group()):04X} is not allowed",
            part=part,
            line=line,
            column=col,
        )
    return text


def parse_text(
    subject: str, body: str, where: str = "template", limits: Limits = DEFAULT_LIMITS
) -> ParsedText:
    """Parse one language's subject and body; raises `TemplateInvalid` with line and column."""
    return _parse_cached(subject, body, where, limits)


@lru_cache(maxsize=128)
def _parse_cached(subject: str, body: str, where: str, limits: Limits) -> ParsedText:
    subject = check_text(subject, f"{where} subject", limits, part="subject")
    body = check_text(body, f"{where} body", limits, part="body")
    if "\n" in subject.strip():
        raise TemplateSyntaxError(f"{where} subject must be one line", part="subject", line=1)
    p = _Parser(f"{where} subject", limits, "subject")
    subject_inlines = tuple(Text("**") if t == "**" else t for t in p.inline(subject.strip(), 1))
    p.where, p.part = f"{where} body", "body"
    blocks: list[Block] = []
    para: list[tuple[int, str]] = []
    items: list[tuple[Inline, ...]] = []

    def flush() -> None:
        if para:
            blocks.append(Block("paragraph", (p.block(para),)))
            para.clear()
        if items:
            blocks.append(Block("list", tuple(items)))
            items.clear()
        if len(blocks) > limits.blocks:
            raise TemplateTooLarge(f"{where} body has more than {limits.blocks} blocks")

    for lineno, raw in enumerate(body.split("\n"), 1):
        line = raw.strip()
        if not line:
            flush()
            continue
        if m := _HEADING.fullmatch(line):
            flush()
            blocks.append(Block("heading", (p.block([(lineno, m[2])]),), level=len(m[1])))
            continue
        if m := _BULLET.fullmatch(line):
            if para:
                flush()
            items.append(p.block([(lineno, m[1])]))
            continue
        if items:
            flush()
        para.append((lineno, line))
    flush()
    return ParsedText(subject_inlines, tuple(blocks), frozenset(p.names))
