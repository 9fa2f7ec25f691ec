from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from schemas import export
from schemas.envelope import SOURCE_RE
from schemas.events import EVENTS
from tests.utils.node import node_tool

REPO = Path(__file__).resolve().parents[2]
CHECKER = REPO / "tools" / "asyncapi-check"


def test_generated_files_are_not_stale() -> None:
    stale = export.stale()
    assert stale == [], f"stale contract files: {stale}; run `python -m schemas.export` and commit the result"


def test_check_mode_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert export.main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_output_is_deterministic() -> None:
    assert export.render() == export.render()
    for rel, text in export.render().items():
        assert text.endswith("\n"), rel
        assert not re.search(r"20\d\d-\d\d-\d\dT\d\d:\d\d", text.split("examples")[0]), rel


def test_stale_and_orphaned_files_are_reported(tmp_path: Path) -> None:
    written = export.write(tmp_path)
    assert sorted(written) == sorted(export.render())
    assert export.stale(tmp_path) == []
    assert export.write(tmp_path) == []  # nothing changed, nothing written

    (tmp_path / "jsonschema" / "ping.v1.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "jsonschema" / "ping.v0.json").write_text("{}\n", encoding="utf-8")
    assert export.stale(tmp_path) == [
        "jsonschema/ping.v1.json",
        "jsonschema/ping.v0.json (not generated; remove it)",
    ]
    export.write(tmp_path)
    assert export.stale(tmp_path) == []
    assert not (tmp_path / "jsonschema" / "ping.v0.json").exists()


def test_one_payload_schema_per_event_type() -> None:
    files = export.render()
    for spec in EVENTS.values():
        doc = json.loads(files[f"jsonschema/{spec.schema_file}"])
        assert doc["$id"] == spec.dataschema
        assert f"/v{spec.version}." in doc["$id"]
        assert doc["$schema"] == export.JSON_SCHEMA_DIALECT
        assert doc["additionalProperties"] is False
        assert f"Protection: {spec.protection}." in doc["description"]
    envelope = json.loads(files["jsonschema/cloudevent.json"])
    assert set(envelope["required"]) >= {"id", "source", "specversion", "type", "recipients"}


@pytest.mark.parametrize(
    "source",
    [
        "urn:nld:cbs:GM0518:systeem:leerlingzaken",
        "urn:nld:oin:00000001234567890000:systeem:zaak-1",
        "urn:nld:cbs:GM0518:systeem:",
        "urn:nld:oin:123:systeem:x",
        "urn:nld:kvk:1234:systeem:x",
    ],
)
def test_exported_source_pattern_agrees_with_python(source: str) -> None:
    ecma = json.loads(export.render()["jsonschema/cloudevent.json"])["properties"]["source"]
    assert bool(re.search(ecma["pattern"], source)) == bool(SOURCE_RE.match(source))


def test_asyncapi_document_shape() -> None:
    doc = yaml.safe_load(export.render()["asyncapi.yaml"])
    assert doc["asyncapi"] == export.ASYNCAPI_VERSION
    channels = doc["channels"]
    assert channels["ingress"]["address"] == "inbeeld.ingress"
    assert channels["inbox"]["address"] == "inbeeld.inbox.{tenant}.{key}"
    assert set(channels["inbox"]["parameters"]) == {"tenant", "key"}
    assert set(doc["components"]["messages"]) == {s.short_type for s in EVENTS.values()}
    ingress = set(channels["ingress"]["messages"])
    assert ingress == {s.short_type for s in EVENTS.values() if not s.hub_only}
    assert set(channels["inbox"]["messages"]) == {s.short_type for s in EVENTS.values()}
    assert doc["operations"]["publishEvent"]["action"] == "send"
    assert doc["operations"]["receiveEvents"]["action"] == "receive"
    for spec in EVENTS.values():
        msg = doc["components"]["messages"][spec.short_type]
        envelope = msg["payload"]["allOf"][1]["properties"]
        assert envelope["type"]["const"] == spec.type
        assert envelope["dataschema"]["const"] == spec.dataschema
        if spec.protection == "none":
            assert envelope["data"]["$ref"].endswith("/" + spec.model.__name__)
        else:
            assert envelope["data"]["allOf"] == [{"$ref": "#/components/schemas/JoseObject"}]
            assert "JWS" in envelope["data"]["description"]
    # every $ref points inside the document
    for ref in re.findall(r"\$ref: '?([^'\s]+)", export.render()["asyncapi.yaml"]):
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]


def test_asyncapi_passes_the_official_parser() -> None:
    node, _ = node_tool("asyncapi-check")
    result = subprocess.run(
        [node, str(CHECKER / "validate.mjs"), str(REPO / "schemas" / "asyncapi.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
