"""Hostile input at the connector's edges: files dropped in the folder source, bodies POSTed
to the HTTP source, and CSV files for the pupil register. Each one gets a clear error naming
what is wrong (a file in failed/ beside its .error.txt, a 422, a row in the import report);
none raises out of the source loop or the importer, and nothing is half sent or half
imported. (Template bundles have their own hostile corpus: tests/connectors/letters.)"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from connectors.cli import app
from connectors.client import Connector, ConnectorError
from connectors.config import FolderSourceConfig, HttpSourceConfig
from connectors.keystore import Keystore
from connectors.register import count, import_csv
from connectors.sources import MAX_BATCH_EVENTS, MAX_FILE_BYTES, FolderSource, HttpSource
from connectors.store import LocalStore
from schemas.envelope import CloudEvent
from tests.connectors.test_register import HEADER, bsn

PING = "nl.leerplicht.ping"
GOOD_DOC = {"type": PING, "recipients": ["GM0599"], "data": {"text": "hello"}}


class RecordingConnector(Connector):
    """A connector whose publish only records (no broker): the sources' own behaviour."""

    def __init__(self) -> None:
        super().__init__("GM0518", "amqp://u:p@127.0.0.1:1/x", system="hostile")
        self.published: list[CloudEvent] = []

    async def publish(self, event: CloudEvent) -> CloudEvent:
        self.published.append(event)
        return event


def _ping(text: str) -> bytes:
    return json.dumps({"type": PING, "recipients": ["GM0599"], "data": {"text": text}}).encode()


# name -> (bytes, the field the error names, a fragment of the error)
FILES: dict[str, tuple[bytes, str, str]] = {
    "huge.json": (b'{"pad": "' + b"x" * MAX_FILE_BYTES + b'"}', "(file)", "exceeds 1 MiB"),
    "deep-array.json": (b"[" * 100_000 + b"]" * 100_000, "(file)", "nested too deeply"),
    "deep-object.json": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "(file)", "nested too deeply"),
    "deep-data.json": (  # beyond schemas.nesting.MAX_DEPTH: refused before any parse
        json.dumps({**GOOD_DOC, "data": {"text": json.loads("[" * 500 + "]" * 500)}}).encode(),
        "(file)",
        "nested too deeply",
    ),
    "nested-data.json": (  # within the bound: the schema names the field
        json.dumps({**GOOD_DOC, "data": {"text": json.loads("[" * 40 + "]" * 40)}}).encode(),
        "data.text",
        "string",
    ),
    "latin1.json": (
        '{"type": "nl.leerplicht.ping", "data": {"text": "Ëlla"}}'.encode("latin-1"),
        "(file)",
        "not valid JSON",
    ),
    "nul-bytes.json": (
        b'{"type": "nl.leerplicht.ping",\x00\x00 "recipients": []}',
        "(file)",
        "not valid JSON at line 1",
    ),
    "lone-surrogate.json": (_ping("\ud800").replace(b"\\\\", b"\\"), "data.text", "unicode"),
    "huge-int.json": (
        b'{"type": "nl.leerplicht.ping", "data": {"n": ' + b"9" * 5000 + b"}}",
        "(file)",
        "not valid JSON",
    ),
    "empty.json": (b"", "(file)", "not valid JSON"),
    "bom-garbage.json": (b"\xef\xbb\xbf\xff\xfe{}", "(file)", "not valid JSON"),
    "top-level-array.json": (b"[1, 2, 3]", "document", "valid dictionary"),
    "control-in-subject.json": (json.dumps({**GOOD_DOC, "subject": "a\nb"}).encode(), "subject", "pattern"),
    "500-recipients-and-one.json": (
        json.dumps({**GOOD_DOC, "recipients": ["GM0599"] * 501}).encode(),
        "recipients",
        "at most 500",
    ),
    "nan.json": (
        b'{"type": "nl.leerplicht.ping", "recipients": ["GM0599"], "data": {"text": NaN}}',
        "data.text",
        "string",
    ),
}


def test_hostile_files_go_to_failed_with_a_specific_error(tmp_path: Path) -> None:
    folder = tmp_path / "outgoing"
    (folder / "sent").mkdir(parents=True)
    (folder / "failed").mkdir()
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes(_ping("from outside the folder"))
    for name, (raw, _, _) in FILES.items():
        (folder / name).write_bytes(raw)
    links = {
        "link-outside.json": outside,  # would send a file the folder does not hold
        "link-dangling.json": tmp_path / "nothing-here.json",
        "link-dev-zero.json": Path("/dev/zero"),  # would be read forever
    }
    for name, target in links.items():
        os.symlink(target, folder / name)
    (folder / "zz-good.json").write_bytes(_ping("good"))
    os.utime(folder / "zz-good.json", (2_000_000_000, 2_000_000_000))  # scanned last

    connector = RecordingConnector()
    source = FolderSource(FolderSourceConfig(kind="folder", path=folder), connector)
    import asyncio

    sent = asyncio.run(source.scan())

    assert sent == 1 and [e.data["text"] for e in connector.published] == ["good"]
    assert (folder / "sent" / "zz-good.json").exists()
    assert sorted(p.name for p in folder.iterdir() if p.is_file() or p.is_symlink()) == []
    failed = folder / "failed"
    expected = {name: (field, why) for name, (_, field, why) in FILES.items()}
    expected |= {name: ("(file)", "a symbolic link") for name in links}
    for name, (field, why) in expected.items():
        assert (failed / name).exists() or (failed / name).is_symlink(), name
        text = (failed / f"{name}.error.txt").read_text()
        assert f"field: {field}\n" in text, (name, text)
        assert why in text, (name, text)
        assert "nothing was sent" in text
    assert outside.exists() and (failed / "link-outside.json").is_symlink()  # moved, not followed
    assert source.failed == len(expected)


json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def near_documents(draw: st.DrawFn) -> bytes:
    """A good document with one field replaced, added or removed."""
    doc: dict[str, Any] = json.loads(json.dumps(GOOD_DOC))
    key = draw(st.sampled_from(["type", "recipients", "data", "subject", "correlationid", "id", "extra"]))
    if draw(st.booleans()) and key in doc:
        del doc[key]
    else:
        doc[key] = draw(json_values)
    return json.dumps(doc).encode()


hostile_bytes = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_documents(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=hostile_bytes)
def test_any_file_is_sent_or_failed_never_raises(raw: bytes) -> None:
    import asyncio

    tmp = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        folder = tmp / "outgoing"
        connector = RecordingConnector()
        source = FolderSource(FolderSourceConfig(kind="folder", path=folder), connector)
        for d in (folder, source.sent_dir, source.failed_dir):
            d.mkdir(parents=True, exist_ok=True)
        (folder / "drop.json").write_bytes(raw)
        sent = asyncio.run(source.scan())
        assert not (folder / "drop.json").exists()
        if sent:
            assert len(connector.published) == 1 and (folder / "sent" / "drop.json").exists()
        else:
            assert not connector.published
            text = (folder / "failed" / "drop.json.error.txt").read_text()
            assert text.startswith("file: drop.json\nfield: ") and "\nerror: " in text
    finally:
        shutil.rmtree(tmp)


# -- the HTTP source -------------------------------------------------------------------------


def _http_client() -> tuple[httpx.AsyncClient, RecordingConnector]:
    connector = RecordingConnector()
    source = HttpSource(HttpSourceConfig(kind="http", port=0), connector, token=None)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=source.app), base_url="http://src"), connector


async def test_http_source_answers_hostile_bodies_with_422() -> None:
    client, connector = _http_client()
    async with client:
        for name, (raw, field, why) in FILES.items():
            if name == "huge.json":
                field = "(body)"
            if name == "top-level-array.json":  # over HTTP an array is a batch: element 0 is no document
                field = "0.document"
            response = await client.post("/events", content=raw, headers={"content-type": "application/json"})
            assert response.status_code == 422, (name, response.status_code, response.text)
            body = response.json()
            if field == "(file)":
                assert body["field"] == "(body)", (name, body)
            else:
                assert body["field"] == field and why in body["error"], (name, body)
        assert (await client.post("/events", content=_ping("ok"))).status_code == 202
    assert [e.data["text"] for e in connector.published] == ["ok"]


@settings(max_examples=300, deadline=None)
@given(raw=hostile_bytes)
async def test_http_source_never_answers_5xx(raw: bytes) -> None:
    client, connector = _http_client()
    async with client:
        response = await client.post("/events", content=raw)
    assert response.status_code in (202, 422), (response.status_code, response.text)
    assert len(connector.published) == (response.status_code == 202)


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": PING, "recipients": ["GM0599"], "data": {"text": text}, **extra}


async def test_http_source_takes_an_array_and_answers_the_ids_in_order() -> None:
    client, connector = _http_client()
    docs = [_doc(f"b{i}", id=f"batch-{i}") for i in range(5)] + [_doc("no id")]
    async with client:
        response = await client.post("/events", json=docs)
    assert response.status_code == 202, response.text
    ids = response.json()["ids"]
    assert ids[:5] == [f"batch-{i}" for i in range(5)] and len(ids) == 6 and ids[5]
    assert [e.id for e in connector.published] == ids  # one subject each: sent in order here


async def test_http_source_keeps_a_subjects_order_within_a_batch() -> None:
    client, connector = _http_client()
    docs = [_doc(f"s{i}", id=f"ordered-{i}", subject=f"case-{i % 2}") for i in range(8)]
    async with client:
        response = await client.post("/events", json=docs)
    assert response.status_code == 202, response.text
    for subject in ("case-0", "case-1"):
        mine = [e.id for e in connector.published if e.subject == subject]
        assert mine == [d["id"] for d in docs if d["subject"] == subject]


@pytest.mark.parametrize(
    ("docs", "field", "why"),
    [
        ([_doc("ok"), _doc("x" * 201), _doc("ok")], "1.data.text", "1.data.text: "),
        ([_doc("ok"), _doc("ok"), {"type": PING}], "2.recipients", "2.recipients: "),
        ([_doc("ok"), 7], "1.document", "1.document: "),
        ([_doc("ok", bogus=1)], "0.bogus", "0.bogus: "),
        ([], "(body)", "an empty array"),
        ([_doc("ok")] * (MAX_BATCH_EVENTS + 1), "(body)", f"at most {MAX_BATCH_EVENTS}"),
    ],
    ids=["bad-payload", "missing-field", "not-an-object", "unknown-field", "empty", "too-many"],
)
async def test_http_source_refuses_a_bad_batch_whole(docs: list[Any], field: str, why: str) -> None:
    client, connector = _http_client()
    async with client:
        response = await client.post("/events", json=docs)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and why in body["error"], body
    assert set(body) == {"field", "error"}
    assert not connector.published  # nothing of the batch was sent


async def test_http_source_limits_the_body_of_a_batch() -> None:
    client, connector = _http_client()
    raw = b"[" + b",".join([json.dumps(_doc("x" * 200)).encode()] * 20_000) + b"]"
    assert len(raw) > 4 * MAX_FILE_BYTES
    async with client:
        response = await client.post("/events", content=raw)
    assert response.status_code == 422
    assert response.json() == {"field": "(body)", "error": "the body exceeds 4 MiB (an array of events)"}
    assert not connector.published


class UnreachableConnector(RecordingConnector):
    async def publish(self, event: CloudEvent) -> CloudEvent:
        raise ConnectorError("cannot reach the hub's broker at 127.0.0.1:1 (ConnectionRefusedError)")


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_http_source_answers_503_while_the_broker_is_away(batch: bool) -> None:
    source = HttpSource(HttpSourceConfig(kind="http", port=0), UnreachableConnector(), token=None)
    transport = httpx.ASGITransport(app=source.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://src") as client:
        response = await client.post("/events", json=[_doc("a"), _doc("b")] if batch else _doc("a"))
    assert response.status_code == 503
    assert "cannot reach the hub's broker" in response.json()["error"]


# -- CSV imports into the pupil register -----------------------------------------------------

GOOD_ROW = f"{bsn(12345670)},Fictief,van der,Voorbeeld,2012-03-04,Spoorstraat,1,,,2511AB,Den Haag,GM0518,,,"
MANY = "\n".join(f"{bsn(20000000 + i * 100)},A,,B,2012-01-01,S,1,,,2511AB,X,GM0518,,," for i in range(40))
# name -> (bytes, rows imported, (line, field, fragment of why) of the first error)
CSVS: dict[str, tuple[bytes, int, tuple[int, str, str] | None]] = {
    "latin-1": (
        (HEADER + "\n" + GOOD_ROW.replace("Fictief", "Fiëtief")).encode("latin-1"),
        0,
        (2, "(file)", "not UTF-8"),
    ),
    "utf-16": ((HEADER + "\n" + GOOD_ROW).encode("utf-16"), 0, (1, "(file)", "not UTF-8")),
    "binary": (bytes(range(256)) * 8, 0, (2, "(file)", "not UTF-8")),
    "huge-field-first-line": (
        (HEADER + "\n" + GOOD_ROW.replace("Fictief", "F" * 200_000)).encode(),
        0,
        (2, "(file)", "not valid CSV"),
    ),
    "huge-field-later": (
        (HEADER + "\n" + MANY + "\n" + GOOD_ROW.replace("Fictief", "F" * 200_000)).encode(),
        40,
        (42, "(file)", "the rest is ignored"),
    ),
    "nul-in-a-value": (
        (HEADER + "\n" + GOOD_ROW.replace("Fictief", "Fic\0tief")).encode(),
        0,
        (2, "given_names", "control characters"),
    ),
    "newline-in-quotes": (
        (HEADER + "\n" + GOOD_ROW.replace("Fictief", '"Fic\ntief"')).encode(),
        0,
        (3, "given_names", "single line"),
    ),
    "unclosed-quote": ((HEADER + '\n"' + GOOD_ROW).encode(), 0, (2, "bsn", "BSN")),
    "too-many-values": ((HEADER + "\n" + GOOD_ROW + ",x,y").encode(), 0, (2, "(row)", "more values")),
    "too-few-values": ((HEADER + "\n" + GOOD_ROW.split(",Den Haag")[0]).encode(), 0, (2, "city", "")),
    "formula": ((HEADER + "\n" + GOOD_ROW.replace("Den Haag", '=HYPERLINK("x")')).encode(), 1, None),
    "no-header": (GOOD_ROW.encode(), 0, (1, "bsn", "required column is missing")),
    "empty": (b"", 0, (1, "bsn", "required column is missing")),
    "header-only": (HEADER.encode(), 0, None),
    "unknown-column": ((HEADER + ",evil\n" + GOOD_ROW + ",1").encode(), 0, (1, "evil", "unknown column")),
}


async def test_hostile_csv_rows_get_specific_errors(tmp_path: Path) -> None:
    keystore = Keystore.create(tmp_path / "ks.json", passphrase="hostile csv passphrase", scrypt_n=2**14)
    for name, (raw, imported, first) in CSVS.items():
        csv_file = tmp_path / f"{name}.csv"
        csv_file.write_bytes(raw)
        store = await LocalStore.open(tmp_path / f"{name}.db", keystore)
        try:
            report = await import_csv(store, csv_file, batch=16)
            assert report.imported == imported, (name, report)
            assert await count(store) == imported, name  # nothing half imported
            if first is None:
                assert report.errors == [], (name, report.errors)
            else:
                line, field, why = first
                e = report.errors[0]
                assert (e.row, e.field) == (line, field) and why in e.why, (name, report.errors)
            for e in report.errors:
                assert "\0" not in e.why and "FFFFFFFF" not in e.why and "HYPERLINK" not in e.why
        finally:
            await store.close()


def test_register_import_command_names_a_non_utf8_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOSTILE_PASS", "hostile csv passphrase")
    config = tmp_path / "c.toml"
    config.write_text(
        'tenant = "GM0518"\n'
        '[broker]\nurl = "amqp://127.0.0.1:5672/x"\nusername = "u"\npassword = "p"\n'
        '[keystore]\npath = "ks.json"\npassphrase_env = "TEST_HOSTILE_PASS"\n'
        '[store]\npath = "store.db"\n'
    )
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes(CSVS["latin-1"][0])
    result = CliRunner().invoke(app, ["register", "import", str(csv_file), "--config", str(config)])
    assert result.exit_code == 1, result.output
    assert "not UTF-8" in result.output and "Traceback" not in result.output
