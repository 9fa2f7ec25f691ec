"""Sealed events end to end: tenants' connectors seal with their keystores and the directory,
the real hub verifies without decrypting and routes through the real broker, recipients
open. Then the privacy scan: nothing of the pupil in the hub's store, on the wire or in logs."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import structlog
from sqlalchemy import inspect, text

from connectors.keystore import Keystore, KeystoreError
from connectors.sealing import Sealer
from schemas import sealed
from schemas.blind_index import new_group_key
from schemas.envelope import CloudEvent, parse_event
from schemas.errors import BadSignature, CryptoError
from schemas.events import GroupKeyShared, TransferOffered
from schemas.validation import validate_payload
from tests.e2e.conftest import TENANTS, Party
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

OFFERED = "nl.leerplicht.transfer.offered"
KEY_SHARED = "nl.leerplicht.group.key_shared"
DOSSIER = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))
# What must never be readable outside the two municipalities (case-insensitive).
PERSONAL = (
    "111222333",
    "Sanne Maria",
    "Voorbeeld",
    "2014-05-17",
    "Proefstraat",
    "Testkade",
    "2511 AB",
    "2511AB",
    "3011AA",
    "06 12345678",
    "m.voorbeeld@mail.example",
)


def dossier(offerer: str = "GM0518") -> dict[str, Any]:
    return {**DOSSIER, "transfer_id": f"tr-{offerer}-{uuid.uuid4().hex[:12]}"}


def offer(party: Party, to: str, data: dict[str, Any] | None = None) -> CloudEvent:
    data = data or dossier(party.code)
    return party.connector.event(OFFERED, data, [to], subject=data["transfer_id"])


def rejection_of(event_id: str):
    return lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] == event_id


def leaks(text_: str) -> list[str]:
    """The personal values found in `text_`, case-insensitively - except those that read as
    hexadecimal in lower case (postcodes like 3011AA), which any digest may contain by chance:
    those are searched as written."""
    low = text_.lower()
    hexlike = {p for p in PERSONAL if re.fullmatch(r"[0-9a-f]+", p.lower())}
    return [p for p in PERSONAL if (p in text_ if p in hexlike else p.lower() in low)]


def sig_keys(ks: Keystore) -> list[dict[str, Any]]:
    return [k for k in ks.public_jwks()["keys"] if k["use"] == "sig"]


def group_key_payload(group: str = "landelijk") -> dict[str, Any]:
    key_id, key = new_group_key()
    return {"group": group, "key_id": key_id, "key": base64.urlsafe_b64encode(key).rstrip(b"=").decode()}


# -- round trips ------------------------------------------------------------------------------


async def test_sealed_dossier_reaches_one_recipient(hub: RunningHub, parties: dict[str, Party]) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    data = dossier()
    sent = await den_haag.connector.publish(await den_haag.sealer.seal(offer(den_haag, "GM0599", data)))
    assert not leaks(sent.to_bytes().decode())
    [got] = await hub.receive("GM0599", lambda e: e.id == sent.id)
    payload = await rotterdam.sealer.open(got)
    assert isinstance(payload, TransferOffered)
    assert payload == validate_payload(OFFERED, data)
    assert payload.pupil.bsn == "111222333"


async def test_sealed_to_a_group_reaches_every_other_member(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    den_haag = parties["GM0518"]
    data = group_key_payload()
    event = den_haag.connector.event(KEY_SHARED, data, ["group:landelijk"])
    sent = await den_haag.connector.publish(await den_haag.sealer.seal(event))
    verified = sealed.verify(
        sent.data, envelope=sealed.EnvelopeBinding.from_event(sent), sender_keys=sig_keys(den_haag.keystore)
    )
    expected_kids = {parties[c].keystore.primary_kid("enc") for c in TENANTS if c != "GM0518"}
    assert set(verified.recipient_kids) == expected_kids  # one entry per member key, not ours
    for code in TENANTS:
        if code == "GM0518":
            continue
        [got] = await hub.receive(code, lambda e: e.id == sent.id)
        payload = await parties[code].sealer.open(got)
        assert isinstance(payload, GroupKeyShared) and payload.key == data["key"]


async def test_a_non_recipient_with_valid_keys_cannot_decrypt(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    den_haag = parties["GM0518"]
    sent = await den_haag.connector.publish(await den_haag.sealer.seal(offer(den_haag, "GM0599")))
    [got] = await hub.receive("GM0599", lambda e: e.id == sent.id)
    with pytest.raises(CryptoError, match="not addressed to any of my keys"):
        await parties["GM0307"].sealer.open(got)


async def test_signed_events_round_trip_and_refuse_bad_content(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    ingrado = parties["ingrado"]
    good = {"template_id": "we-zijn-je-kwijt", "version": "1.2.0", "reason": "vervangen door 1.3.0"}
    plain = ingrado.connector.event("nl.leerplicht.template.withdrawn", good, ["GM0518"])
    event = await ingrado.sealer.seal(plain)
    assert set(event.data) == {"payload", "signatures"}
    assert (await parties["GM0518"].sealer.open(event)).model_dump() == good
    # signed, but its content breaks the contract: the hub checks what it can read
    bad = sealed.sign(
        {**good, "version": "one"},
        envelope=sealed.EnvelopeBinding.from_event(event),
        signer=ingrado.keystore.signing_key(),
    )
    await ingrado.connector.publish(event.model_copy(update={"data": bad}))
    [rejection] = await hub.receive("ingrado", rejection_of(event.id))
    assert rejection.data["reason"] == "schema_invalid" and rejection.data["field"] == "version"


# -- refusals ---------------------------------------------------------------------------------


async def test_readdressed_ciphertext_is_refused(hub: RunningHub, parties: dict[str, Party]) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    sent = await den_haag.connector.publish(await den_haag.sealer.seal(offer(den_haag, "GM0599")))
    [got] = await hub.receive("GM0599", lambda e: e.id == sent.id)
    fresh = str(uuid.uuid4())
    for change in (
        {"id": fresh},
        {"type": "nl.leerplicht.transfer.accepted"},
        {"recipients": ["GM0599", "GM0307"]},
        {"source": "urn:nld:cbs:GM0518:systeem:other"},
    ):
        with pytest.raises(BadSignature):
            await rotterdam.sealer.open(got.model_copy(update={**change, "sequence": None}))

    # the recipient passes the ciphertext on under its own envelope: the hub refuses it,
    # whether with the original signature ...
    forward = rotterdam.connector.event(OFFERED, got.data, ["GM0307"], subject=got.subject)
    await rotterdam.connector.publish(forward)
    [rejection] = await hub.receive("GM0599", rejection_of(forward.id))
    assert rejection.data["reason"] == "bad_signature"
    # ... or re-signed by itself: the JWE inside is still bound to the original envelope
    inner = sealed.verify(
        got.data, envelope=sealed.EnvelopeBinding.from_event(got), sender_keys=sig_keys(den_haag.keystore)
    ).payload
    resigned = rotterdam.connector.event(OFFERED, None, ["GM0307"], subject=got.subject)
    jws = sealed._signed(
        sealed._dumps(inner),
        sealed.CTY_JWE,
        sealed.EnvelopeBinding.from_event(resigned),
        rotterdam.keystore.signing_key(),
    )
    resigned = resigned.model_copy(update={"data": jws})
    await rotterdam.connector.publish(resigned)
    [rejection] = await hub.receive("GM0599", rejection_of(resigned.id))
    assert rejection.data["reason"] == "bad_signature"
    assert "envelope" in rejection.data["message"]


async def test_signature_by_a_key_not_in_the_directory_is_rejected(
    hub: RunningHub, parties: dict[str, Party], tmp_path: Path
) -> None:
    den_haag = parties["GM0518"]
    rogue_keys = Keystore.create(tmp_path / "rogue.keystore", kek=os.urandom(32))
    rogue = Sealer(rogue_keys, den_haag.directory, "GM0518")
    cases = [
        ("bad_signature", await rogue.seal(offer(den_haag, "GM0599"))),
        ("bad_signature", offer(den_haag, "GM0599").model_copy(update={"data": {"jws": "x"}})),
    ]
    # correctly signed, but only signed, where the type must be sealed
    plain = den_haag.connector.event("nl.leerplicht.transfer.accepted", {"transfer_id": "tr-1"}, ["GM0599"])
    signed_only = sealed.sign(
        {"transfer_id": "tr-1"},
        envelope=sealed.EnvelopeBinding.from_event(plain),
        signer=den_haag.keystore.signing_key(),
    )
    cases.append(("schema_invalid", plain.model_copy(update={"data": signed_only})))
    for reason, event in cases:
        await den_haag.connector.publish(event)
        [rejection] = await hub.receive("GM0518", rejection_of(event.id))
        assert rejection.data["reason"] == reason, rejection.data
        assert rejection.data["field"] == "data"
    assert not [e for e in await hub.drain("GM0599") if e.id in {c[1].id for c in cases}]


async def test_sealed_to_a_withdrawn_key_is_rejected(hub: RunningHub, parties: dict[str, Party]) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    event = await den_haag.sealer.seal(offer(den_haag, "GM0599"))  # to Rotterdam's current key
    new = rotterdam.keystore.add_key("enc")
    rotterdam.keystore.promote(new)
    only_new = {"keys": [k for k in rotterdam.keystore.public_jwks()["keys"] if k["status"] != "retired"]}
    await rotterdam.directory.register(  # withdraws the key the event was sealed to
        only_new, tenant="GM0599", signers=rotterdam.keystore.signing_keys()
    )
    await den_haag.connector.publish(event)
    [rejection] = await hub.receive("GM0518", rejection_of(event.id))
    assert rejection.data["reason"] == "recipient_key_missing"


# -- rotation and shredding -------------------------------------------------------------------


async def test_rotation_in_tinks_order(hub: RunningHub, parties: dict[str, Party]) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    old_enc = rotterdam.keystore.primary_kid("enc")
    before = await den_haag.sealer.seal(offer(den_haag, "GM0599"))  # sealed to the old key

    new_enc = rotterdam.keystore.add_key("enc")
    await rotterdam.register()  # published as pending, everyone may fetch it
    rotterdam.keystore.promote(new_enc)
    await rotterdam.register()  # now primary; the old one is retired, still published

    await den_haag.connector.publish(before)
    [got] = await hub.receive("GM0599", lambda e: e.id == before.id)
    assert isinstance(await rotterdam.sealer.open(got), TransferOffered)  # with the retired key

    # after key.rotated the sender seals to the new primary only
    def announces_rotation(e: CloudEvent) -> bool:
        return (
            e.type.endswith("key.rotated")
            and e.data["tenant"] == "GM0599"
            and {old_enc, new_enc} <= set(e.data["kids"])
        )

    [note] = await hub.receive("GM0518", announces_rotation)
    den_haag.directory.on_key_rotated(note)
    # the signer rotates too: the hub and the recipient fetch its new key when they see it
    new_sig = den_haag.keystore.add_key("sig")
    await den_haag.register()
    den_haag.keystore.promote(new_sig)
    await den_haag.register()
    after = await den_haag.connector.publish(await den_haag.sealer.seal(offer(den_haag, "GM0599")))
    v = sealed.verify(
        after.data, envelope=sealed.EnvelopeBinding.from_event(after), sender_keys=sig_keys(den_haag.keystore)
    )
    assert v.recipient_kids == (new_enc,) and v.signer_kid == new_sig
    [got] = await hub.receive("GM0599", lambda e: e.id == after.id)
    assert isinstance(await rotterdam.sealer.open(got), TransferOffered)


async def test_destroying_the_keystore_shreds_what_was_received(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    sent = await den_haag.connector.publish(await den_haag.sealer.seal(offer(den_haag, "GM0599")))
    [got] = await hub.receive("GM0599", lambda e: e.id == sent.id)
    stored = got.to_bytes()  # what the connector kept
    assert isinstance(await rotterdam.sealer.open(parse_event(stored)), TransferOffered)
    path = rotterdam.keystore.path
    rotterdam.keystore.destroy()
    with pytest.raises(CryptoError):
        await rotterdam.sealer.open(parse_event(stored))
    assert not path.exists()
    with pytest.raises(KeystoreError):
        Keystore.open(path, kek=os.urandom(32))


# -- the privacy scan -------------------------------------------------------------------------


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the processes log while inside: structlog's rendered output (after the
    redaction processor, exactly as it would reach a log file) and the stdlib loggers."""
    buffer = io.StringIO()
    old_factory = structlog.get_config()["logger_factory"]
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        structlog.configure(logger_factory=old_factory)


@pytest.fixture
async def wiretap(hub: RunningHub) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A copy of every message into and out of the hub: a queue of ours (the admin user, in
    the test vhost) bound to the ingress (all types) and to every tenant's delivery key."""
    conn = await aio_pika.connect(hub.settings.amqp_url_for())
    channel = await conn.channel()
    queue = await channel.declare_queue(f"wiretap-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True)
    await queue.bind("inbeeld.ingress", routing_key="#")
    for code in TENANTS:
        await queue.bind("inbeeld.delivery", routing_key=code)
    yield queue
    await conn.close()


async def _tapped(queue: aio_pika.abc.AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    got = []
    idle = 0
    while idle < 5:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            idle += 1
            await asyncio.sleep(0.1)
        else:
            idle = 0
            got.append(message)
    return got


async def _dump_database(hub: RunningHub) -> dict[str, str]:
    """Every row of every table, every column, as text (bytes decoded leniently)."""

    def tables(conn: Any) -> list[str]:
        return inspect(conn).get_table_names()

    out: dict[str, str] = {}
    async with hub.db.engine.connect() as conn:
        for table in await conn.run_sync(tables):
            rows = (await conn.execute(text(f'SELECT * FROM "{table}"'))).all()
            cells = []
            for row in rows:
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        cells.append(bytes(value).decode("utf-8", "replace"))
                    elif isinstance(value, dict | list):
                        cells.append(json.dumps(value, ensure_ascii=False))
                    else:
                        cells.append(str(value))
            out[table] = "\n".join(cells)
    return out


async def test_privacy_scan(hub: RunningHub, parties: dict[str, Party], wiretap, tmp_path: Path) -> None:
    normalised = validate_payload(OFFERED, DOSSIER).model_dump(mode="json")  # what gets sealed
    plain = json.dumps(DOSSIER, ensure_ascii=False) + json.dumps(normalised, ensure_ascii=False)
    assert leaks(plain) == list(PERSONAL)  # every needle is really in the pupil's file
    den_haag = parties["GM0518"]
    rogue_keys = Keystore.create(tmp_path / "rogue.keystore", kek=os.urandom(32))
    rogue = Sealer(rogue_keys, den_haag.directory, "GM0518")
    with captured_logs() as logs:
        sent = await den_haag.connector.publish(await den_haag.sealer.seal(offer(den_haag, "GM0599")))
        share = den_haag.connector.event(KEY_SHARED, group_key_payload(), ["group:landelijk"])
        shared = await den_haag.connector.publish(await den_haag.sealer.seal(share))
        bad = await den_haag.connector.publish(await rogue.seal(offer(den_haag, "GM0599")))
        [got] = await hub.receive("GM0599", lambda e: e.id == sent.id)
        assert (await parties["GM0599"].sealer.open(got)).pupil.bsn == "111222333"
        await hub.receive("GM0307", lambda e: e.id == shared.id)
        await hub.receive("GM0518", rejection_of(bad.id))
        tapped = await _tapped(wiretap)

    ids = {m.message_id for m in tapped}
    assert {sent.id, shared.id, bad.id} <= ids  # the tap saw the flow, in and out
    assert len(tapped) >= 2 + 1 + 4 + 1 + 1  # ingress x3, offer out, 4 members, the rejection
    for message in tapped:
        found = leaks(message.body.decode("utf-8", "replace"))
        assert not found, f"{message.message_id} ({message.type}) carries {found}"

    database = await _dump_database(hub)
    assert "tenant_keys" in database and "ledger_events" in database
    assert sent.id in database["ledger_events"]
    for table, dump in database.items():
        assert not leaks(dump), f"table {table} holds {leaks(dump)}"

    written = logs.getvalue()
    # The logs were captured: the router's line for the rejected offer is there (logged before
    # the rejection the test waited for). In one CI run of the whole suite the routed offer's
    # "router.routed" line was missing although the copy arrived - not reproduced since
    # (closing note of session 2); the scan below covers whatever was written.
    assert "router.rejected" in written and bad.id in written
    assert not leaks(written), f"the logs hold {leaks(written)}"
