"""The nesting-depth bound (schemas.nesting): counted like a parser would, refused clearly."""

from __future__ import annotations

import json
import time
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import parse_event
from schemas.errors import TooDeep
from schemas.nesting import MAX_DEPTH, check_json, check_toml, loads


def nested(depth: int, kinds: str = "[") -> str:
    """A JSON text `depth` levels deep, opening arrays/objects in the order `kinds` repeats."""
    opens = [kinds[i % len(kinds)] for i in range(depth)]
    head = "".join('{"k":' if c == "{" else "[" for c in opens)
    tail = "".join("}" if c == "{" else "]" for c in reversed(opens))
    return head + "1" + tail


def json_value(depth: int) -> object:
    value: object = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("depth", [0, 1, MAX_DEPTH])
def test_depth_up_to_the_limit_passes(depth):
    text = json.dumps(json_value(depth))
    check_json(text)
    check_json(text.encode())
    assert loads(text) == json.loads(text)


@given(st.integers(MAX_DEPTH + 1, 100_000), st.sampled_from(["[", "{", "[{", "{["]))
@settings(max_examples=30, deadline=None)
def test_deeper_than_the_limit_is_refused_never_recursion(depth, kinds):
    text = nested(depth, kinds)
    with pytest.raises(TooDeep) as exc:
        loads(text)
    assert exc.value.reason == "too_deep"
    assert f"{depth} levels" in exc.value.message
    with pytest.raises(TooDeep):
        check_json(text.encode())


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"a": "[" * 10_000, "b": '\\"[{' * 1000, "c": ["]" * 500]})
    check_json(text)
    assert loads(text.encode())["c"] == ["]" * 500]


def test_an_escaped_quote_does_not_end_a_string():
    # If `\"` ended the string, the brackets after it would be counted as structure.
    text = '{"a": "x\\"' + "[" * 100 + '"}'
    check_json(text)
    assert loads(text) == {"a": 'x"' + "[" * 100}


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n'),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text('[]{}"\\ab', max_size=3), inner, max_size=3)
        ),
        max_leaves=40,
    )
)
@settings(max_examples=200, deadline=None)
def test_the_count_is_the_parsers_depth(value):
    text = json.dumps(value)

    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    expected = depth(value)
    check_json(text, limit=expected)
    if expected:
        with pytest.raises(TooDeep):
            check_json(text, limit=expected - 1)


def test_bytes_that_are_not_utf8_are_a_value_error_not_a_guess():
    with pytest.raises(ValueError):
        loads("[1]".encode("utf-16"))


@given(st.integers(MAX_DEPTH + 1, 100_000), st.sampled_from(["data", "recipients", "subject", "top"]))
@settings(max_examples=25, deadline=None)
def test_parse_event_refuses_deep_bodies_as_too_deep(depth, where):
    deep = nested(depth, "[{")
    event = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:nld:cbs:GM0518:systeem:test",
        "type": "nl.leerplicht.ping",
        "recipients": ["GM0599"],
        "data": {},
    }
    if where == "top":
        body = deep
    else:
        event.pop(where, None)
        body = json.dumps(event)[:-1] + f', "{where}": {deep}}}'
    with pytest.raises(TooDeep) as exc:
        parse_event(body.encode())
    assert exc.value.reason == "too_deep"


def test_parse_event_still_parses_ordinary_events():
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": "e-1",
            "source": "urn:nld:cbs:GM0518:systeem:test",
            "type": "nl.leerplicht.ping",
            "recipients": ["GM0599"],
            "data": json_value(MAX_DEPTH - 1),
        }
    ).encode()
    assert parse_event(body).id == "e-1"


# -- TOML -------------------------------------------------------------------------------------


def toml_nested(depth: int, kinds: str) -> str:
    opens = [kinds[i % len(kinds)] for i in range(depth)]
    head = "".join("{ k = " if c == "{" else "[" for c in opens)
    tail = "".join(" }" if c == "{" else "]" for c in reversed(opens))
    return f"value = {head}1{tail}\n"


@given(st.integers(MAX_DEPTH + 1, 100_000), st.sampled_from(["[", "{", "[{"]))
@settings(max_examples=25, deadline=None)
def test_deep_toml_is_refused_never_recursion(depth, kinds):
    with pytest.raises(TooDeep):
        check_toml(toml_nested(depth, kinds))


def test_toml_strings_tables_and_comments_do_not_count():
    text = (
        "# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n"
        "[hub]\n"
        'a = "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\""\n'
        "b = '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['\n"
        'c = """\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n"""\n'
        "d = '''\n[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n'''\n"
        "[[sinks]]\nkind = 'stdout'\n" + toml_nested(MAX_DEPTH - 2, "[{")
    )
    check_toml(text)
    assert tomllib.loads(text)["hub"]["b"].startswith("[[")


# -- the scan itself must not be the denial of service -----------------------------------------

HOSTILE_SCANS = {
    "escaped quotes in an open string": b'"' + b'\\"' * 350_000,
    "a trailing backslash": b'"' + b'\\"' * 350_000 + b"\\",
    "only quotes": b'"' * 1_000_000,
    "open strings between brackets": b'["a' * 300_000,
}
HOSTILE_TOML = {
    "escaped quotes": '"' + '\\"' * 350_000,
    "open multi-line basic": '"""' + '\\"' * 350_000,
    "quotes in multi-line basic": '"""' + '""a' * 300_000,
    "quotes in multi-line literal": "'''" + "''a" * 300_000,
    "only quotes": '"' * 1_000_000,
    "only apostrophes": "'" * 1_000_000,
    "quotes, apostrophes, comments": "\"'#\n" * 250_000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_SCANS))
def test_the_json_scan_is_linear_on_hostile_quoting(name):
    """A string pattern that could fail would be retried from every quote inside it: these
    1 MiB inputs took minutes before the patterns were made unable to fail."""
    body = HOSTILE_SCANS[name]
    start = time.perf_counter()
    for text in (body, body.decode()):
        try:
            check_json(text)
        except TooDeep:
            pass
    assert time.perf_counter() - start < 3


@pytest.mark.parametrize("name", sorted(HOSTILE_TOML))
def test_the_toml_scan_is_linear_on_hostile_quoting(name):
    start = time.perf_counter()
    try:
        check_toml(HOSTILE_TOML[name])
    except TooDeep:
        pass
    assert time.perf_counter() - start < 3


@given(st.text(alphabet="[]{}\"\\'#\n ab=", max_size=300))
@settings(max_examples=300, deadline=None)
def test_the_toml_count_is_at_least_what_tomllib_nests(text):
    """Whatever tomllib manages to parse, the scan saw at least as deep."""
    try:
        value = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return

    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    inline = depth(value) - 1  # the document itself is a table, not written with brackets
    if inline > 0:
        with pytest.raises(TooDeep):
            check_toml(text, limit=inline - 1)
