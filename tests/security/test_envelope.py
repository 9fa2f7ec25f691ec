"""The signed envelope against a live hub (issue 15, items 6 and 7).

- A tenant that swaps `subject` or `correlationid` on its own validly signed event is refused
  (`bad_signature`): both are in the signed binding now. A copy with a swapped subject put
  straight into an inbox (a hostile hub or broker) is rejected by `Connector.inbox()` itself.
- A malformed JOSE object is `crypto_invalid`, a signature that does not verify
  `bad_signature`.
- What another JOSE implementation (panva/jose 6) seals — the ephemeral key in the JWE
  protected header — is routed by the hub and opened by the recipient's connector."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from prometheus_client import REGISTRY

from connectors import Connector
from hub.services import amqp_channel
from schemas import sealed
from schemas.envelope import CloudEvent
from schemas.events import TransferOffered
from tests.e2e.conftest import Party
from tests.utils.hubs import RunningHub
from tests.utils.node import node_tool

pytestmark = pytest.mark.broker

OFFERED = "nl.leerplicht.transfer.offered"
DOSSIER = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))
SEAL_TOOL = Path(__file__).parents[2] / "tools" / "jose-interop" / "seal.mjs"


def transfer_id() -> str:
    return f"tr-GM0518-{uuid.uuid4().hex[:12]}"


def offer(party: Party, *, subject: str | None = None, correlationid: str | None = None) -> CloudEvent:
    data = {**DOSSIER, "transfer_id": subject or transfer_id()}
    return party.connector.event(
        OFFERED, data, ["GM0599"], subject=data["transfer_id"], correlationid=correlationid
    )


def rejection_of(event_id: str):
    return lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] == event_id


async def deliver(hub: RunningHub, code: str, event: CloudEvent) -> None:
    """Put `event` in `code`'s inbox as the hub's router would (a hostile hub or broker)."""
    async with amqp_channel(hub.settings) as channel:
        exchange = await channel.get_exchange("inbeeld.delivery", ensure=False)
        message = aio_pika.Message(event.to_bytes(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, routing_key=code)


async def read_until(connector: Connector, event_id: str, timeout: float = 20) -> list[CloudEvent]:
    got: list[CloudEvent] = []

    async def read() -> None:
        async for message in connector.inbox(idle_timeout=5):
            await message.ack()
            got.append(message.event)
            if message.event.id == event_id:
                return

    await asyncio.wait_for(read(), timeout)
    return got


# -- item 7: subject and correlationid are signed -----------------------------------------------


@pytest.mark.parametrize("member", ["subject", "correlationid"])
async def test_a_swapped_attribute_is_refused_by_the_hub(
    hub: RunningHub, parties: dict[str, Party], member: str
) -> None:
    den_haag = parties["GM0518"]
    await hub.drain("GM0599")
    signed = await den_haag.sealer.seal(offer(den_haag, correlationid="flow-a"))
    swapped_value = transfer_id() if member == "subject" else "flow-b"
    swapped = signed.model_copy(update={member: swapped_value})
    await den_haag.connector.publish(swapped)
    [rejection] = await hub.receive("GM0518", rejection_of(swapped.id))
    assert rejection.data["reason"] == "bad_signature", rejection.data
    assert "another envelope" in rejection.data["message"]
    assert not [e for e in await hub.drain("GM0599") if e.id == swapped.id]


async def test_a_swapped_subject_is_refused_by_the_connector_inbox(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    """Every SDK user with a sealer gets the check, not only the runtime's `check_subject`."""
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    await hub.drain("GM0599")
    signed = await den_haag.sealer.seal(offer(den_haag))
    tampered = signed.model_copy(update={"subject": transfer_id(), "sequence": None})
    honest = await den_haag.sealer.seal(offer(den_haag))
    await deliver(hub, "GM0599", tampered)
    await deliver(hub, "GM0599", honest)
    failures_before = _open_failures()
    inbox = Connector(
        "GM0599",
        hub.tenant_url("GM0599"),
        inbox_name=hub.inbox("GM0599"),
        system="test",
        sealer=rotterdam.sealer,
    )
    await inbox.connect()
    try:
        got = await read_until(inbox, honest.id)
    finally:
        await inbox.close()
    assert [e.id for e in got] == [honest.id]
    assert inbox.stats.rejected == 1
    assert _open_failures() - failures_before == 1  # inbeeld_connector_open_failures_total


def _open_failures() -> float:
    """inbeeld_connector_open_failures_total over every reason."""
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == "inbeeld_connector_open_failures_total"
    )


# -- item 6: reason codes and another implementation's JWE --------------------------------------


async def test_malformed_jose_is_crypto_invalid_and_a_bad_signature_is_bad_signature(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    den_haag = parties["GM0518"]
    good = await den_haag.sealer.seal(offer(den_haag))
    jws: dict[str, Any] = good.data
    signature = jws["signatures"][0]["signature"]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    cases = {
        "crypto_invalid": {**jws, "signatures": [{**jws["signatures"][0], "protected": "!not-base64!"}]},
        "bad_signature": {**jws, "signatures": [{**jws["signatures"][0], "signature": flipped}]},
    }
    for reason, data in cases.items():
        event = offer(den_haag).model_copy(update={"data": data, "id": str(uuid.uuid4())})
        await den_haag.connector.publish(event)
        [rejection] = await hub.receive("GM0518", rejection_of(event.id))
        assert rejection.data["reason"] == reason, rejection.data
        assert rejection.data["field"] == "data"


async def test_what_jose_seals_with_one_recipient_is_routed_and_opened(
    hub: RunningHub, parties: dict[str, Party], tmp_path: Path
) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    node, _ = node_tool("jose-interop")
    await hub.drain("GM0599")
    event = offer(den_haag)
    enc_keys = [k for k in rotterdam.keystore.public_jwks()["keys"] if k["use"] == "enc"]
    document = {
        "plaintext": event.data,
        "envelope": sealed.EnvelopeBinding.from_event(event).to_header(),
        "sender_private_jwk": dict(den_haag.keystore.signing_key()),
        "recipient_public_jwks": [{m: k[m] for m in ("kty", "crv", "x")} for k in enc_keys[:1]],
    }
    path = tmp_path / "seal.json"
    path.write_text(json.dumps(document))
    result = await asyncio.to_thread(
        subprocess.run, [node, str(SEAL_TOOL), str(path)], capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()
    jose_event = event.model_copy(update={"data": json.loads(result.stdout)})

    await den_haag.connector.publish(jose_event)
    inbox = Connector(
        "GM0599",
        hub.tenant_url("GM0599"),
        inbox_name=hub.inbox("GM0599"),
        system="test",
        sealer=rotterdam.sealer,
    )
    await inbox.connect()
    try:
        got = await read_until(inbox, jose_event.id)
    finally:
        await inbox.close()
    assert got[-1].id == jose_event.id
    assert inbox.stats.rejected == 0
    payload = await rotterdam.sealer.open(got[-1])
    assert isinstance(payload, TransferOffered) and payload.transfer_id == event.data["transfer_id"]
    rejections = [e for e in await hub.drain("GM0518") if e.type == "nl.leerplicht.hub.rejected"]
    assert not [r for r in rejections if r.data["event_id"] == jose_event.id]
