"""Every kind of event the hub delivers, read off the inbox as a CloudEvents consumer would:
the official CloudEvents Python SDK parses it (structured mode, by the message's content
type), and `sequence` is the sequence extension's string — zero-padded, so its string order is
its numeric order — with `sequencetype` `Integer` (issue 15, item 13)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.bindings.rabbitmq import RabbitMQMessage, from_rabbitmq
from cloudevents.core.formats.json import JSONFormat

from connectors import Connector
from connectors.templates import publish
from schemas.envelope import SEQUENCE_WIDTH, CloudEvent
from tests.e2e.conftest import Party
from tests.e2e.test_templates import bundle_copy
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

DOSSIER = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))


Delivered = list[tuple[CloudEvent, "str | None", bytes]]


async def collect(
    hub: RunningHub,
    code: str,
    done: Callable[[Delivered], bool],
    *,
    receipts: bool = False,
    timeout: float = 30,
) -> Delivered:
    """Read `code`'s inbox (acking) until `done`: each event with the content type and body
    the broker handed over."""
    connector = Connector(
        code, hub.tenant_url(code), inbox_name=hub.inbox(code), system="test", receipts=receipts
    )
    await connector.connect()
    got: Delivered = []

    async def read() -> None:
        async for message in connector.inbox(idle_timeout=10):
            got.append((message.event, message._raw.content_type, message._raw.body))
            await message.ack()
            if done(got):
                return

    try:
        await asyncio.wait_for(read(), timeout)
    finally:
        await connector.close()
    assert done(got), [e.type for e, _, _ in got]
    return got


async def test_every_delivered_kind_parses_with_the_cloudevents_sdk(
    hub: RunningHub, parties: dict[str, Party], tmp_path: Path
) -> None:
    den_haag, ingrado = parties["GM0518"], parties["ingrado"]
    await hub.drain("GM0599")
    await hub.drain("GM0518")
    ping = await den_haag.connector.send("nl.leerplicht.ping", {"text": "hallo"}, ["GM0599"])
    transfer_id = f"tr-GM0518-{uuid.uuid4().hex[:12]}"
    offer = den_haag.connector.event(
        "nl.leerplicht.transfer.offered",
        {**DOSSIER, "transfer_id": transfer_id},
        ["GM0599"],
        subject=transfer_id,
    )
    offer = await den_haag.connector.publish(await den_haag.sealer.seal(offer))  # sealed
    template = await publish(ingrado.connector, ingrado.sealer, bundle_copy(tmp_path))  # signed
    refused = await den_haag.connector.send("nl.leerplicht.ping", {"text": "x"}, ["GM9999"])

    # Rotterdam reads them, and answers each with a receipt (the hub tells the sender) ...
    wanted = {ping.id, offer.id, template.id}
    rotterdam = await collect(hub, "GM0599", lambda got: wanted <= {e.id for e, _, _ in got}, receipts=True)

    # ... Den Haag gets the hub's rejection of its ping to nobody and the receipts.
    def den_haag_done(got: Delivered) -> bool:
        types = {(e.type, (e.data or {}).get("event_id")) for e, _, _ in got}
        return ("nl.leerplicht.hub.rejected", refused.id) in types and any(
            t == "nl.leerplicht.hub.receipt" for t, _ in types
        )

    own = await collect(hub, "GM0518", den_haag_done)

    kinds: set[str] = set()
    for inbox in (rotterdam, own):
        sequences = []
        for sent, content_type, body in inbox:
            assert content_type == "application/cloudevents+json", sent.type
            message = RabbitMQMessage(headers={}, content_type=content_type, body=body)
            event = from_rabbitmq(message, JSONFormat())
            assert event.get_id() == sent.id and event.get_type() == sent.type
            kinds.add(event.get_type())
            sequence: Any = event.get_extension("sequence")
            assert isinstance(sequence, str) and len(sequence) == SEQUENCE_WIDTH and sequence.isdigit()
            assert int(sequence) == sent.sequence
            assert event.get_extension("sequencetype") == "Integer"
            sequences.append(sequence)
        # one inbox, one counter: string order is arrival order is numeric order
        assert sequences == sorted(sequences) == sorted(sequences, key=int)
    assert {
        "nl.leerplicht.ping",
        "nl.leerplicht.transfer.offered",
        "nl.leerplicht.template.published",
        "nl.leerplicht.hub.rejected",
        "nl.leerplicht.hub.receipt",
    } <= kinds
