"""The nesting-depth bound: checked on untrusted text before any parser sees it.

Recursive-descent parsers (Python's `json`, `tomllib`) raise `RecursionError` on input nested
a few thousand levels deep — a deep stack frame in the middle of the router or the connector,
not a clear refusal. Every JSON or TOML document the hub or a connector parses from outside
is scanned here first and refused with `TooDeep` (reason `too_deep`) beyond `MAX_DEPTH`.

The scan is linear and non-recursive: string contents (and TOML comments) are cut out with
one regular expression (so a `[` inside a string does not count), the remaining brackets are
mapped to +1/-1 and the running maximum is taken in C (`itertools.accumulate`). A string is
cut the way the parser reads it (from a quote outside any string to the next unescaped
quote), so no bracket the parser treats as structure can hide from the scan; a string left
open swallows the rest, where the parser stops with an error anyway. Input that is not valid
JSON or TOML may be miscounted, but the parser then refuses it before it could recurse.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from schemas.errors import TooDeep

__all__ = ["MAX_DEPTH", "check_json", "check_toml", "loads"]

MAX_DEPTH = 64  # arrays/objects inside one another; our deepest document (a dossier) needs < 10

# Each pattern below matches from its opening quote and can never fail once it started: a
# string left open runs to the end of its line (TOML) or of the input. No match is ever
# retried from inside an earlier one, so the scan stays linear on hostile input such as
# `"\"\"\"...` (a pattern that could fail would rescan from every quote: quadratic).
# A JSON string, escapes included (unrolled loop, no backtracking).
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S]?[^"\\]*)*(?:"|\Z)')
_JSON_STRING_B = re.compile(rb'"[^"\\]*(?:\\[\s\S]?[^"\\]*)*(?:"|\Z)')
# TOML strings (multi-line first: `"""` must not be read as an empty string and a quote) and
# comments, which may hold brackets and quotes of their own.
_TOML_SKIP = re.compile(
    r'"""[^"\\]*(?:(?:\\[\s\S]?|"(?!""))[^"\\]*)*(?:"""|\Z)'  # multi-line basic; `\` escapes
    r"|'''[\s\S]*?(?:'''|\Z)"  # multi-line literal: no escapes
    r'|"[^"\\\n]*(?:\\[^\n]?[^"\\\n]*)*(?:"|(?=\n)|\Z)'  # basic: one line
    r"|'[^'\n]*(?:'|(?=\n)|\Z)"  # literal: one line
    r"|#[^\n]*"  # comment
)
_OPEN, _CLOSE = "[{", "]}"
# Code point -> +1/-1: the running sum over the brackets left is the nesting depth.
_DELTA = {ord(c): 1 for c in _OPEN} | {ord(c): -1 for c in _CLOSE}


def _deepest(structure: str, limit: int) -> int:
    if structure.count("[") + structure.count("{") <= limit:
        return 0  # too few openers to exceed the limit however they nest (the common case)
    brackets = re.sub(r"[^\[\]{}]+", "", structure)
    return max(accumulate(map(_DELTA.__getitem__, map(ord, brackets))))


def _refuse(depth: int, limit: int, what: str, field: str | None) -> TooDeep:
    return TooDeep(f"{what} is nested too deeply: {depth} levels, the limit is {limit}", field=field)


def check_json(
    text: str | bytes, *, limit: int = MAX_DEPTH, what: str = "the JSON document", field: str | None = None
) -> None:
    """Raise `TooDeep` if `text` (JSON, UTF-8 when bytes) nests arrays/objects deeper than
    `limit`. Does not check that it is JSON."""
    if isinstance(text, bytes | bytearray | memoryview):
        # UTF-8 never puts a quote, backslash or bracket byte inside a multi-byte character,
        # so the byte scan sees exactly the structure a UTF-8 JSON parser sees.
        stripped = _JSON_STRING_B.sub(b"", bytes(text)).decode("latin-1")
    else:
        stripped = _JSON_STRING.sub("", text)
    depth = _deepest(stripped, limit)
    if depth > limit:
        raise _refuse(depth, limit, what, field)


def check_toml(
    text: str, *, limit: int = MAX_DEPTH, what: str = "the TOML document", field: str | None = None
) -> None:
    """Raise `TooDeep` if `text` nests TOML arrays/inline tables deeper than `limit`
    (a `[table]` header counts as one level, `[[array]]` as two: both far below any limit)."""
    depth = _deepest(_TOML_SKIP.sub("", text), limit)
    if depth > limit:
        raise _refuse(depth, limit, what, field)


def loads(
    text: str | bytes, *, limit: int = MAX_DEPTH, what: str = "the JSON document", field: str | None = None
) -> Any:
    """`json.loads` after the depth check. Bytes must be UTF-8 (`ValueError` otherwise, as for
    malformed JSON; `json.loads` would otherwise guess UTF-16/32, which the scan does not read)."""
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8")  # UnicodeDecodeError is a ValueError
    check_json(text, limit=limit, what=what, field=field)
    return json.loads(text)
