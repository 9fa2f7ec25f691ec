"""The demo's story, played in this process with every span exported to memory: each event of
the pupil transfer is one connected trace from the sender's connector through the router to
the receiver's connector, no exported span holds any of the demo's personal data, and the
processing logs at the sender, the hub and the receiver join on the trace id."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console
from sqlalchemy import select

from connectors.store import LocalStore
from demo import notice_step, transfer_step
from demo.story import play
from hub import audit
from hub.config import Settings
from hub.store.db import Database
from hub.store.models import AuditRecord
from schemas import tracing
from schemas.processing_log import STATUS_OK, processing_activity_id
from tests.conftest import RUN_ID
from tests.utils.hubs import remove_deployment

pytestmark = [pytest.mark.broker, pytest.mark.slow]

STEPS = ("offered", "accepted", "completed")
# Who sends each step of the demo's transfer, and who receives it.
PARTIES = {
    "offered": (transfer_step.OFFERER, transfer_step.RECEIVER),
    "accepted": (transfer_step.RECEIVER, transfer_step.OFFERER),
    "completed": (transfer_step.OFFERER, transfer_step.RECEIVER),
}


def personal_data() -> set[str]:
    """Every BSN, name, birth date, street, postcode and phone number the demo uses."""
    found: set[str] = set()
    for row in csv.DictReader(io.StringIO(notice_step.REGISTER)):
        for column in ("bsn", "given_names", "family_name", "birth_date", "street", "postcode"):
            found.add(row[column])
            found.update(row[column].split())  # "Sanne Maria": each name alone too
    dossier = transfer_step.DOSSIER
    found.update(v for v in dossier["pupil"].values() if isinstance(v, str))
    for address in ("previous_address", "new_address"):
        found.update({dossier[address]["street"], dossier[address]["postcode"]})
    found.update(g["phone"] for g in dossier["guardians"])
    found.add(dossier["absence_case"]["case_number"])
    return {v for v in found if len(v) >= 4}


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure("inbeeld-demo-test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.configure("inbeeld-test")  # off again for the rest of the session


@pytest.fixture
async def demo_run(tmp_path: Path, exported: InMemorySpanExporter) -> tuple[Path, list[ReadableSpan]]:
    vhost = f"inbeeld-test-{RUN_ID}-traces"
    out = tmp_path / "demo-out"
    try:
        await play(Settings(vhost=vhost, log_level="WARNING"), out, vhost, Console(file=io.StringIO()))
    finally:
        await remove_deployment(Settings(vhost=vhost))
    return out, list(exported.get_finished_spans())


def _one(spans: list[ReadableSpan], name: str, event_id: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name and (s.attributes or {}).get("inbeeld.event.id") == event_id]
    assert len(found) == 1, f"{name} of {event_id}: {len(found)} spans"
    return found[0]


def _linked(spans: list[ReadableSpan], name: str, to: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and any(link.context == to.context for link in s.links)]


def _children(spans: list[ReadableSpan], name: str, parent: ReadableSpan) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if s.name == name and s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


_GENERATED_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}"
)


def _scanned(span: ReadableSpan) -> str:
    """A span's JSON without what the exporter generates (trace and span ids, times): random hex
    ids and timestamps hold four-digit runs such as a postcode's by chance, and are no data."""
    data = json.loads(span.to_json(indent=None))
    for key in ("context", "parent_id", "start_time", "end_time"):
        data.pop(key, None)
    for link in data.get("links", []):
        link.pop("context", None)
    for event in data.get("events", []):
        event.pop("timestamp", None)
    data.get("resource", {}).get("attributes", {}).pop("service.instance.id", None)  # a UUID
    text = json.dumps(data, ensure_ascii=False)
    return _GENERATED_ID.sub("<id>", text)  # event and transfer ids: random UUIDs and hex


async def test_each_transfer_event_is_one_connected_trace_without_personal_data(
    demo_run: tuple[Path, list[ReadableSpan]],
) -> None:
    out, spans = demo_run
    events = json.loads((out / "demo.json").read_text())["transfer"]["events"]
    assert set(events) == set(STEPS)
    traces = set()
    for step in STEPS:
        event_id = events[step]
        sent = _one(spans, "connector.publish", event_id)
        assert sent.parent is None  # the transfer step starts here
        [decided] = [s for s in _children(spans, "router.decide", sent)]
        assert decided.attributes is not None and decided.attributes["inbeeld.outcome"] == "routed"
        # The router publishes and confirms per batch: one span each, linked to this decision.
        [published] = _linked(spans, "router.publish", decided)
        assert published.attributes is not None and published.attributes["inbeeld.copies"] >= 1
        assert published.attributes["inbeeld.refused"] == 0
        assert len(_linked(spans, "router.confirm", decided)) == 1
        [received] = _children(spans, "connector.receive", decided)  # the copy carries the decision
        assert received.attributes is not None and received.attributes["inbeeld.event.id"] == event_id
        [opened] = _children(spans, "connector.decrypt", received)  # sealed: opened by the receiver
        trace_ids = {s.context.trace_id for s in (sent, decided, received, opened)}
        assert len(trace_ids) == 1, f"{step}: one trace, not {len(trace_ids)}"
        traces |= trace_ids
    assert len(traces) == len(STEPS)  # three events, three traces, never mixed

    # No exported span - names, attributes, events, statuses, resources - holds personal data.
    assert len(spans) > 50
    leaked = {(s.name, value) for s in spans for value in personal_data() if value in _scanned(s)}
    assert not leaked, leaked


async def test_processing_logs_of_sender_hub_and_receiver_join_on_the_trace_id(
    demo_run: tuple[Path, list[ReadableSpan]],
) -> None:
    out, _spans = demo_run
    events = json.loads((out / "demo.json").read_text())["transfer"]["events"]
    stores = {}
    for code in (transfer_step.OFFERER, transfer_step.RECEIVER):
        folder = out / "connectors" / code
        # The demo's keystores live in its memory only (random KEK): the records are read
        # without one here, so the data subject shows up only as what is stored - encrypted.
        assert b"111222333" not in (folder / "store.db").read_bytes()
        stores[code] = await LocalStore.open(folder / "store.db")
    db = Database(f"sqlite+aiosqlite:///{out / 'hub.db'}")
    try:
        for step in STEPS:
            event_id = events[step]
            sender, receiver = PARTIES[step]
            async with db.session() as s:
                [hub_record] = (
                    await s.scalars(
                        select(AuditRecord).where(
                            AuditRecord.subject_ref == event_id,
                            AuditRecord.activity == f"route transfer.{step}",
                        )
                    )
                ).all()
            trace_id = hub_record.trace_id
            assert trace_id is not None
            at_sender = await stores[sender].processing_records(trace_id)
            at_receiver = await stores[receiver].processing_records(trace_id)
            assert [(r.name, r.event_id) for r in at_sender] == [(f"send transfer.{step}", event_id)]
            assert [(r.name, r.event_id) for r in at_receiver] == [(f"receive transfer.{step}", event_id)]
            sent, got = at_sender[0], at_receiver[0]
            # The chain of operations: sender's publish -> the hub's decision -> the receiver;
            # each record names its parent.
            assert hub_record.parent_span_id == sent.span_id
            assert got.parent_span_id == hub_record.span_id
            for record in (sent, got):
                assert record.status == STATUS_OK and record.start <= record.end
                assert record.processing_activity_id == processing_activity_id("nl.leerplicht.transfer.x")
                assert record.counterpart == (receiver if record is sent else sender)
            assert hub_record.status_code == STATUS_OK
            assert hub_record.processing_activity_id == sent.processing_activity_id
            assert hub_record.end_time is not None and hub_record.end_time >= hub_record.time
        # Only the offer carries a dossier: its data subject is kept at both ends, encrypted
        # under a wrapped data key, and the answers to it inherit it (so a pupil's access
        # report lists every step); the hub's record has no such field at all.
        for code in stores:
            with sqlite3.connect(out / "connectors" / code / "store.db") as conn:
                rows = dict(
                    conn.execute(
                        "SELECT event_id, data_subject_id FROM processing_log WHERE event_type LIKE ?",
                        ("nl.leerplicht.transfer.%",),
                    ).fetchall()
                )
            for step in STEPS:
                assert rows[events[step]] is not None, step
                assert transfer_step.DOSSIER["pupil"]["bsn"].encode() not in rows[events[step]]
        assert "data_subject_id" not in AuditRecord.__table__.columns
        async with db.session() as s:
            assert (await audit.verify(s)).intact
    finally:
        for store in stores.values():
            await store.close()
        await db.close()
