"""End-to-end receipts: only a real recipient may confirm; the sender gets `hub.receipt`."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub import ledger
from hub.store.models import DeliveryRecord
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker
PING = "nl.leerplicht.ping"


async def test_recipient_confirms_and_sender_gets_hub_receipt(hub: RunningHub) -> None:
    den_haag, roermond = await hub.connector("GM0518"), await hub.connector("GM0957")
    sent = await den_haag.send(PING, {"text": "please confirm"}, ["GM0957"])
    await hub.receive("GM0957", lambda e: e.id == sent.id)
    await roermond.send(
        "nl.leerplicht.receipt", {"event_id": sent.id, "event_source": sent.source}, ["GM0518"]
    )
    [receipt] = await hub.receive(
        "GM0518", lambda e: e.type == "nl.leerplicht.hub.receipt" and e.data["event_id"] == sent.id
    )
    assert receipt.data["recipient"] == "GM0957"
    assert receipt.source == hub.settings.hub_source
    async with hub.db.session() as s:
        row = await ledger.find(s, sent.source, sent.id)
        assert row is not None
        delivery = await s.scalar(select(DeliveryRecord).where(DeliveryRecord.ledger_id == row.id))
    assert delivery is not None and delivery.confirmed_at is not None


async def test_a_tenant_cannot_confirm_what_it_did_not_receive(hub: RunningHub) -> None:
    den_haag, amersfoort = await hub.connector("GM0518"), await hub.connector("GM0307")
    sent = await den_haag.send(PING, {"text": "not for Amersfoort"}, ["GM0957"])
    await hub.receive("GM0957", lambda e: e.id == sent.id)
    forged = await amersfoort.send(
        "nl.leerplicht.receipt", {"event_id": sent.id, "event_source": sent.source}, ["GM0518"]
    )
    [rejection] = await hub.receive(
        "GM0307", lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] == forged.id
    )
    assert rejection.data["reason"] == "not_authorised"
