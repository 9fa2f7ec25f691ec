"""Logboek dataverwerkingen at the connector: a sealed transfer offer is recorded by the sender
when it publishes and by the receiver when it opens it, under the trace id the hub's audit
record has too; the pupil's BSN is kept at both ends only encrypted, and crypto-shredding the
register makes it unreadable while the records stay."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from connectors.register import shred
from connectors.store import LocalStore
from hub.store.models import AuditRecord
from schemas.processing_log import STATUS_OK
from tests.e2e.conftest import Party
from tests.e2e.test_sealed_flow import dossier, offer
from tests.utils.hubs import RunningHub

BSN = "111222333"  # the test dossier's pupil


async def test_a_transfer_offer_is_logged_at_both_ends_with_the_pupil_encrypted(
    hub: RunningHub, parties: dict[str, Party], tmp_path: Path
) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    stores = {
        p.code: await LocalStore.open(tmp_path / f"{p.code}.db", p.keystore) for p in (den_haag, rotterdam)
    }
    for p in (den_haag, rotterdam):
        p.connector.sealer, p.connector.processing_log = p.sealer, stores[p.code]
    try:
        data = dossier()
        assert data["pupil"]["bsn"] == BSN
        sent = await den_haag.connector.publish(offer(den_haag, "GM0599", data))
        [got] = await hub.receive("GM0599", lambda e: e.id == sent.id)
        async with hub.db.session() as s:
            [routed] = (await s.scalars(select(AuditRecord).where(AuditRecord.subject_ref == sent.id))).all()
        [at_sender] = [r for r in await stores["GM0518"].processing_records() if r.event_id == sent.id]
        [at_receiver] = [r for r in await stores["GM0599"].processing_records() if r.event_id == sent.id]
        assert at_sender.trace_id == routed.trace_id == at_receiver.trace_id
        assert sent.traceparent is not None and sent.traceparent.split("-")[2] == at_sender.span_id
        assert routed.parent_span_id == at_sender.span_id
        assert got.traceparent is not None and got.traceparent.split("-")[2] == at_receiver.span_id
        assert (at_sender.name, at_receiver.name) == ("send transfer.offered", "receive transfer.offered")
        assert (at_sender.counterpart, at_receiver.counterpart) == ("GM0599", "GM0518")
        assert at_sender.status == at_receiver.status == STATUS_OK
        assert at_sender.data_subject_id == at_receiver.data_subject_id == BSN
        for store in stores.values():
            await store.engine.dispose()  # everything into the files
        for code in stores:
            raw = b"".join(p.read_bytes() for p in tmp_path.glob(f"{code}.db*"))
            assert BSN.encode() not in raw
        await shred(stores["GM0599"])
        [after] = [r for r in await stores["GM0599"].processing_records() if r.event_id == sent.id]
        assert after.data_subject_id is None and after.trace_id == at_receiver.trace_id
    finally:
        for p in (den_haag, rotterdam):
            p.connector.sealer, p.connector.processing_log = None, None
        for store in stores.values():
            await store.close()
