"""Retained copies and `POST /inbox/resync` against the real broker and store: a copy comes
again byte for byte (same id, sequence and properties) into the caller's own inbox only; the
retention sweep deletes old copies, after which a resync from there is refused with 410."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage
from sqlalchemy import event, func, select, update

from connectors.keystore import Keystore
from connectors.sealing import Sealer
from hub.api.app import create_app
from hub.store.models import DeliveryRecord, LedgerEvent, RetainedCopy
from schemas.envelope import parse_event
from tests.e2e.conftest import make_directory
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys

pytestmark = pytest.mark.broker

PING = "nl.leerplicht.ping"


@pytest.fixture
async def api(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hub.settings, hub.db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as c:
        yield c


async def _bearer(hub: RunningHub, code: str | None) -> dict[str, str]:
    token = await hub.token("tenant", code) if code else await hub.token("operator")
    return {"Authorization": f"Bearer {token}"}


async def _raw(hub: RunningHub, code: str, quiet: float = 0.5) -> list[AbstractIncomingMessage]:
    """Every message in `code`'s inbox, as the broker holds it (read as the hub's admin user,
    acked), until `quiet` seconds pass without one."""
    conn = await aio_pika.connect(hub.settings.amqp_url_for())
    got: list[AbstractIncomingMessage] = []
    try:
        channel = await conn.channel()
        queue = await channel.get_queue(hub.inbox(code), ensure=False)
        async with queue.iterator(timeout=quiet) as messages:
            try:
                async for message in messages:
                    await message.ack()
                    got.append(message)
            except TimeoutError:
                pass
    finally:
        await conn.close()
    return got


async def _sent_to(hub: RunningHub, code: str, n: int) -> list[AbstractIncomingMessage]:
    """`n` pings from GM0518 to `code`, as they reached its inbox."""
    await hub.drain(code)
    sender = await hub.connector("GM0518")
    ids = [(await sender.send(PING, {"text": f"kopie {i}"}, [code])).id for i in range(n)]
    got: list[AbstractIncomingMessage] = []
    for _ in range(50):
        got += [m for m in await _raw(hub, code, 0.2) if m.message_id in ids]
        if len(got) == n:
            break
    assert [m.message_id for m in got] == ids
    return got


def _sequence(message: AbstractIncomingMessage) -> int:
    return int(json.loads(message.body)["sequence"])


async def test_a_resync_publishes_the_same_copies_again_to_the_callers_inbox(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    first = await _sent_to(hub, "GM0599", 3)
    start = _sequence(first[0])
    r = await api.post(
        "/inbox/resync",
        json={"from_sequence": start, "to_sequence": start + 2},
        headers=await _bearer(hub, "GM0599"),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "republished": 3,
        "first_sequence": start,
        "last_sequence": start + 2,
        "next_sequence": None,
        "inbox_full": False,
    }
    again = await _raw(hub, "GM0599")
    assert [m.body for m in again] == [m.body for m in first]  # byte for byte
    assert [(m.message_id, m.type, m.content_type) for m in again] == [
        (m.message_id, m.type, m.content_type) for m in first
    ]
    async with hub.db.session() as s:  # what the hub keeps is what it published
        kept = list(
            await s.scalars(
                select(RetainedCopy.body)
                .where(RetainedCopy.recipient == "GM0599", RetainedCopy.sequence >= start)
                .order_by(RetainedCopy.sequence)
            )
        )
    assert kept == [m.body for m in first]


async def test_a_tenant_resyncs_only_its_own_inbox(hub: RunningHub, api: httpx.AsyncClient) -> None:
    theirs = await _sent_to(hub, "GM0307", 2)
    [own] = await _sent_to(hub, "GM0957", 1)
    headers = await _bearer(hub, "GM0957")
    # Naming another tenant is not part of the request: refused, nothing sent anywhere.
    r = await api.post(
        "/inbox/resync", json={"from_sequence": _sequence(theirs[0]), "tenant": "GM0307"}, headers=headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_request"
    assert not await _raw(hub, "GM0307") and not await _raw(hub, "GM0957")
    # The tenant is the token's: GM0957 gets its own copy again, GM0307's stay where they were.
    r = await api.post("/inbox/resync", json={"from_sequence": _sequence(own)}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["republished"] == 1
    assert [m.body for m in await _raw(hub, "GM0957")] == [own.body]
    assert not await _raw(hub, "GM0307")
    # The operator has no inbox.
    r = await api.post("/inbox/resync", json={"from_sequence": 1}, headers=await _bearer(hub, None))
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "from_sequence"),
        ({"from_sequence": 0}, "from_sequence"),
        ({"from_sequence": -5}, "from_sequence"),
        ({"from_sequence": "een"}, "from_sequence"),
        ({"from_sequence": 2**63}, "from_sequence"),
        ({"from_sequence": 10, "to_sequence": 9}, None),
        ({"from_sequence": 1, "to_sequence": 0}, "to_sequence"),
    ],
)
async def test_bad_requests_are_refused_with_the_reason(
    hub: RunningHub, api: httpx.AsyncClient, body: dict[str, Any], field: str | None
) -> None:
    r = await api.post("/inbox/resync", json=body, headers=await _bearer(hub, "GM0599"))
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["reason"] == "invalid_request"
    if field is not None:
        assert any(field in e["loc"] for e in problem["errors"]), problem
    else:
        assert "to_sequence must not be below from_sequence" in problem["detail"] + str(problem["errors"])


async def test_without_a_token_it_is_401(api: httpx.AsyncClient) -> None:
    r = await api.post("/inbox/resync", json={"from_sequence": 1})
    assert r.status_code == 401


async def test_a_range_not_delivered_yet_republishes_nothing(hub: RunningHub, api: httpx.AsyncClient) -> None:
    first = await _sent_to(hub, "GM0599", 1)
    r = await api.post(
        "/inbox/resync",
        json={"from_sequence": _sequence(first[0]) + 1},
        headers=await _bearer(hub, "GM0599"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["republished"] == 0
    assert not await _raw(hub, "GM0599")


async def test_the_sweep_deletes_copies_past_retention_and_a_resync_from_there_is_410(
    hub: RunningHub, api: httpx.AsyncClient
) -> None:
    old, young = await _sent_to(hub, "ingrado", 2)
    old_seq, young_seq = _sequence(old), _sequence(young)
    # Everything up to the first copy was delivered longer ago than the hub keeps copies.
    long_ago = datetime.now(UTC) - timedelta(days=hub.settings.retention_days + 1)
    async with hub.db.session() as s, s.begin():
        await s.execute(
            update(RetainedCopy)
            .where(RetainedCopy.recipient == "ingrado", RetainedCopy.sequence <= old_seq)
            .values(created_at=long_ago)
        )
    await hub.router.sweep()
    async with hub.db.session() as s:
        left = set(await s.scalars(select(RetainedCopy.sequence).where(RetainedCopy.recipient == "ingrado")))
    assert old_seq not in left and young_seq in left
    assert min(left) == young_seq

    headers = await _bearer(hub, "ingrado")
    r = await api.post("/inbox/resync", json={"from_sequence": old_seq}, headers=headers)
    assert r.status_code == 410, r.text
    problem = r.json()
    assert problem["reason"] == "before_retention"
    assert problem["field"] == "from_sequence"
    assert f"the oldest kept is {young_seq}" in problem["detail"]
    assert not await _raw(hub, "ingrado")  # nothing half-sent
    r = await api.post("/inbox/resync", json={"from_sequence": young_seq}, headers=headers)
    assert r.status_code == 200 and r.json()["republished"] == 1
    assert [m.body for m in await _raw(hub, "ingrado")] == [young.body]


async def test_a_sealed_event_is_kept_and_sent_again_as_its_ciphertext_only(
    hub: RunningHub, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    app = create_app(hub.settings, hub.db)
    sealers = {}
    for code in ("GM0518", "GM0599"):
        keystore = Keystore.create(tmp_path / f"{code}.keystore", kek=os.urandom(32))
        directory = await make_directory(hub, app, code)
        await install_keys(hub, code, keystore.public_jwks())
        sealers[code] = (Sealer(keystore, directory, code), directory)
    try:
        await hub.drain("GM0599")  # the key.rotated announcements
        dossier = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))
        transfer_id = f"tr-GM0518-{uuid.uuid4().hex[:16]}"
        sender = await hub.connector("GM0518")
        event = sender.event(
            "nl.leerplicht.transfer.offered",
            {**dossier, "transfer_id": transfer_id},
            ["GM0599"],
            subject=transfer_id,
        )
        sent = await sender.publish(await sealers["GM0518"][0].seal(event))
        got: list[AbstractIncomingMessage] = []
        for _ in range(50):
            got += [m for m in await _raw(hub, "GM0599", 0.2) if m.message_id == sent.id]
            if got:
                break
        [first] = got
        async with hub.db.session() as s:
            [kept] = list(await s.scalars(select(RetainedCopy.body).where(RetainedCopy.event_id == sent.id)))
        assert kept == first.body
        for personal in (b"111222333", b"Voorbeeld", b"Sanne", b"Proefstraat", b"2511 AB"):
            assert personal not in kept  # the hub keeps the sender's ciphertext, nothing readable
        data = json.loads(kept)["data"]
        assert set(data) == {"payload", "signatures"}  # a JWS over the JWE (schemas.sealed)
        jwe = json.loads(base64.urlsafe_b64decode(data["payload"] + "=" * (-len(data["payload"]) % 4)))
        assert {"protected", "iv", "ciphertext", "tag", "recipients"} <= set(jwe)

        r = await api.post(
            "/inbox/resync",
            json={"from_sequence": _sequence(first), "to_sequence": _sequence(first)},
            headers=await _bearer(hub, "GM0599"),
        )
        assert r.status_code == 200 and r.json()["republished"] == 1, r.text
        [again] = await _raw(hub, "GM0599")
        assert again.body == first.body
        opened = await sealers["GM0599"][0].open(parse_event(again.body))
        assert opened.model_dump(mode="json")["pupil"]["family_name"] == "Voorbeeld"  # still opens
    finally:
        for _, directory in sealers.values():
            await directory.api.aclose()


async def test_the_router_keeps_a_batch_of_copies_with_one_statement(hub: RunningHub) -> None:
    """Retained beside the delivery records: one INSERT per batch, not one per copy."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO"):
            statements.append(statement.split("(")[0].split()[2].strip('"'))

    engine = hub.db.engine.sync_engine
    await hub.drain("GM0599")
    sender = await hub.connector("GM0518")
    event.listen(engine, "before_cursor_execute", seen)
    try:
        sent = [sender.event(PING, {"text": f"batch {i}"}, ["group:landelijk"]) for i in range(30)]
        await asyncio.gather(*(sender.publish(e) for e in sent))
        ids = {e.id for e in sent}
        got: list[AbstractIncomingMessage] = []
        for _ in range(50):
            got += [m for m in await _raw(hub, "GM0599", 0.2) if m.message_id in ids]
            if len(got) == len(sent):
                break
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(got) == len(sent)
    deliveries, kept = statements.count("deliveries"), statements.count("retained_copies")
    assert 1 <= kept == deliveries  # written together, batch by batch
    assert kept < len(got) * 4  # 30 events to (at least) 4 members each: fewer statements than copies
    async with hub.db.session() as s:
        copies = await s.scalar(
            select(func.count())
            .select_from(DeliveryRecord)
            .join(LedgerEvent, LedgerEvent.id == DeliveryRecord.ledger_id)
            .where(LedgerEvent.event_id.in_(ids))
        )
        rows = await s.scalar(
            select(func.count()).select_from(RetainedCopy).where(RetainedCopy.event_id.in_(ids))
        )
    assert copies and rows == copies  # every copy of every member kept


async def test_a_readable_copy_with_a_bsn_is_delivered_but_not_kept(hub: RunningHub) -> None:
    """The envelope rule's safety net, applied to what the hub keeps: a plain ping whose text
    holds a BSN reaches its recipient, but its body is not retained (so not resynced either);
    the ping beside it, without one, is kept as usual."""
    bsn = "111222333"  # passes the 11-test
    await hub.drain("GM0599")
    sender = await hub.connector("GM0518")
    with_bsn = await sender.send(PING, {"text": f"leerling {bsn}"}, ["GM0599"])
    plain = await sender.send(PING, {"text": "geen persoonsgegevens"}, ["GM0599"])
    got: list[AbstractIncomingMessage] = []
    for _ in range(50):
        got += [m for m in await _raw(hub, "GM0599", 0.2) if m.message_id in (with_bsn.id, plain.id)]
        if len(got) == 2:
            break
    assert sorted(m.message_id for m in got) == sorted([with_bsn.id, plain.id])  # both delivered
    async with hub.db.session() as s:
        kept = {
            r.event_id: bytes(r.body)
            for r in (
                await s.execute(
                    select(RetainedCopy.event_id, RetainedCopy.body).where(
                        RetainedCopy.event_id.in_([with_bsn.id, plain.id])
                    )
                )
            ).all()
        }
    assert list(kept) == [plain.id]
    assert bsn.encode() not in b"".join(kept.values())
