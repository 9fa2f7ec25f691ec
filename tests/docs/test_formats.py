"""The examples docs/formats.md shows are valid: every JSON file validates against its
event's payload model (and envelope), the template bundle passes the publisher's checks, and
the register CSV imports cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from connectors.client import Connector
from connectors.config import FolderSourceConfig
from connectors.keystore import Keystore
from connectors.letters import load_bundle
from connectors.register import COLUMNS, import_csv, lookup
from connectors.sources import FolderSource, OutgoingDocument
from connectors.store import LocalStore
from schemas.envelope import CloudEvent
from schemas.events import TemplatePublished, TransferOffered, spec_for
from schemas.validation import validate_payload

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "docs" / "examples"
JSON_FILES = sorted(EXAMPLES.glob("*.json"))


def test_there_is_an_example_per_flow() -> None:
    types = {json.loads(p.read_text("utf-8"))["type"] for p in JSON_FILES}
    assert {
        "nl.leerplicht.transfer.offered",
        "nl.leerplicht.notice.pupil_found",
        "nl.leerplicht.template.published",
    } <= types


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_example_validates_against_its_payload_model(path: Path) -> None:
    doc = json.loads(path.read_text("utf-8"))
    if "specversion" in doc:  # what a sink delivers: the envelope with the opened payload
        CloudEvent.model_validate(doc, context={"wire": True})
        assert doc["dataschema"] == spec_for(doc["type"]).dataschema
    else:  # what a source takes: {type, recipients, data, ...}
        OutgoingDocument.model_validate(doc)
        assert not spec_for(doc["type"]).hub_only
    dumped = validate_payload(doc["type"], doc["data"]).model_dump(mode="json", exclude_none=True)
    assert dumped.keys() == doc["data"].keys()  # nothing in the file is dropped or unknown
    if "specversion" in doc:  # a delivered payload is already in its normalised form
        assert dumped == doc["data"]


def test_the_transfer_example_is_a_full_dossier() -> None:
    doc = json.loads((EXAMPLES / "transfer-offered.json").read_text("utf-8"))
    dossier = TransferOffered.model_validate(doc["data"])
    assert dossier.guardians and dossier.absence_case and dossier.contact_attempts and dossier.school
    assert doc["subject"] == dossier.transfer_id  # the runtime refuses a transfer whose subject differs


def test_the_template_bundle_folder_passes_the_publishers_checks() -> None:
    bundle = load_bundle(EXAMPLES / "template-bundle")
    received = json.loads((EXAMPLES / "template-published.json").read_text("utf-8"))
    assert bundle == TemplatePublished.model_validate(received["data"])


async def test_the_register_example_imports(tmp_path: Path) -> None:
    path = EXAMPLES / "register.csv"
    assert path.read_text("utf-8").splitlines()[0].split(",") == list(COLUMNS)
    keystore = Keystore.create(tmp_path / "keystore.json", passphrase="docs example", scrypt_n=2**14)
    store = await LocalStore.open(tmp_path / "connector.db", keystore)
    try:
        report = await import_csv(store, path)
        assert report.errors == [] and report.imported == 2
        record = await lookup(store, "111222333")
        assert record is not None and record["family_name"] == "Voorbeeld"
        assert record["school"] == {"brin": "12AB", "name": "Basisschool De Proeftuin", "level": "po"}
        other = await lookup(store, "123456782")
        assert other is not None and other["school"] is None
    finally:
        await store.close()


class _RecordingConnector(Connector):
    """Publishing only records (no broker): what the folder source itself does."""

    def __init__(self) -> None:
        super().__init__("GM0518", "amqp://u:p@127.0.0.1:9/x", system="docs")
        self.published: list[CloudEvent] = []

    async def publish(self, event: CloudEvent) -> CloudEvent:
        self.published.append(event)
        return event


async def test_the_atomic_write_rule_of_the_folder_source(tmp_path: Path) -> None:
    folder = tmp_path / "outgoing"
    folder.mkdir()
    doc = json.dumps({"type": "nl.leerplicht.ping", "recipients": ["GM0599"], "data": {"text": "hello"}})
    half = doc[: len(doc) // 2]  # a file still being written
    temporary = [".ready.json", "ready.json.tmp", "ready.json.part"]
    for name in temporary:
        (folder / name).write_text(half)
    connector = _RecordingConnector()
    source = FolderSource(FolderSourceConfig(kind="folder", path=folder), connector)
    (folder / "sent").mkdir()
    (folder / "failed").mkdir()

    assert await source.scan() == 0  # temporary names are not read, half-written or not
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == sorted(temporary)

    (folder / ".ready.json").write_text(doc)
    (folder / ".ready.json").rename(folder / "ready.json")  # the rename makes it visible, whole
    assert await source.scan() == 1
    assert [e.data for e in connector.published] == [{"text": "hello"}]
    assert (folder / "sent" / "ready.json").exists()
    assert list((folder / "failed").iterdir()) == []


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_example_validates_against_the_published_json_schema(path: Path) -> None:
    doc = json.loads(path.read_text("utf-8"))
    schema = json.loads(
        (ROOT / "schemas" / "jsonschema" / spec_for(doc["type"]).schema_file).read_text("utf-8")
    )
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc["data"])
    ]
    assert errors == []
