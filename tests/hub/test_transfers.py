"""Pupil transfers through the real broker and hub, sealed by the parties' own keys: every
legal and illegal step, reminders and expiry on a controlled clock, a regional bureau acting
for a member, the sender-side dossier check, and what the API shows."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event as sa_event
from sqlalchemy import select
from typer.testing import CliRunner

from connectors import Connector
from connectors import transfers as sdk
from connectors.cli import app as cli_app
from connectors.keystore import Keystore
from connectors.sealing import Sealer
from hub import provisioning, registry
from hub.api.app import create_app
from hub.services import amqp_channel, management
from hub.store.models import AuditRecord, LedgerEvent, Transfer
from hub.workflows.transfers import TransferWorkflow, bureau_group
from schemas.envelope import CloudEvent
from schemas.errors import SchemaInvalid
from schemas.events import TransferAccepted, TransferOffered, spec_for
from tests.e2e.conftest import TENANTS, Party, make_directory
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys

pytestmark = pytest.mark.broker

PREFIX = "nl.leerplicht.transfer."
REJECTED = "nl.leerplicht.hub.rejected"
BUREAU = "rblwest"  # a regional bureau acting for Amersfoort and Roermond (no hyphen: see `source`)
MEMBERS = ["GM0307", "GM0957"]
DOSSIER = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))


async def _ensure_bureau(hub: RunningHub) -> None:
    """Register and provision the bureau once per hub, with its member group."""
    if BUREAU in hub.creds:
        return
    async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
        async with hub.db.session() as s, s.begin():
            await registry.add_tenant(s, BUREAU, "Regionaal Bureau Leerplicht West", "regional_bureau")
            await registry.add_group(s, bureau_group(BUREAU), MEMBERS, "members rblwest acts for")
            hub.creds[BUREAU] = await provisioning.provision_tenant(s, mgmt, channel, hub.settings, BUREAU)


@pytest.fixture
def app(hub: RunningHub) -> FastAPI:
    return create_app(hub.settings, hub.db)


@pytest.fixture
async def parties(hub: RunningHub, app: FastAPI, tmp_path: Path) -> AsyncIterator[dict[str, Party]]:
    await _ensure_bureau(hub)
    out: dict[str, Party] = {}
    for code in (*TENANTS, BUREAU):
        ks = Keystore.create(tmp_path / f"{code}.keystore", kek=os.urandom(32))
        directory = await make_directory(hub, app, code)
        party = Party(code, ks, directory, Sealer(ks, directory, code), await hub.connector(code))
        await install_keys(hub, code, ks.public_jwks())  # a fresh keystore for a seed tenant
        out[code] = party
    for code in out:
        await hub.drain(code, quiet=0.3)  # the key.rotated announcements
    yield out
    for party in out.values():
        await party.directory.api.aclose()


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        yield client


async def bearer(hub: RunningHub, code: str | None) -> dict[str, str]:
    token = await hub.token("operator") if code is None else await hub.token("tenant", code)
    return {"Authorization": f"Bearer {token}"}


def tid(offerer: str = "GM0518") -> str:
    """A transfer id as the offerer's connector makes it (the hub refuses another's prefix)."""
    return f"tr-{offerer}-{uuid.uuid4().hex[:16]}"


async def send(
    p: Party, step: str, transfer_id: str | None, to: str, *, subject: str | None = "same", **extra: Any
) -> CloudEvent:
    """Seal and publish a transfer step as `p` (the subject defaults to the transfer id)."""
    data = (
        {**DOSSIER, "transfer_id": transfer_id}
        if step == "offered"
        else {"transfer_id": transfer_id, **extra}
    )
    event = p.connector.event(
        PREFIX + step, data, [to], subject=transfer_id if subject == "same" else subject
    )
    return await p.connector.publish(await p.sealer.seal(event))


def is_id(event_id: str) -> Callable[[CloudEvent], bool]:
    return lambda e: e.id == event_id


def rejection_of(event_id: str) -> Callable[[CloudEvent], bool]:
    return lambda e: e.type == REJECTED and e.data["event_id"] == event_id


async def routed(hub: RunningHub, sent: CloudEvent, to: str) -> CloudEvent:
    [got] = await hub.receive(to, is_id(sent.id))
    return got


async def refused(hub: RunningHub, sent: CloudEvent, sender: str, reason: str, words: str) -> None:
    [rejection] = await hub.receive(sender, rejection_of(sent.id))
    assert rejection.data["reason"] == reason, rejection.data
    assert words in rejection.data["message"], rejection.data


async def state_of(hub: RunningHub, transfer_id: str) -> str | None:
    async with hub.db.session() as s:
        t = await s.get(Transfer, transfer_id)
        return None if t is None else t.state


async def timeline(api: httpx.AsyncClient, hub: RunningHub, code: str, transfer_id: str) -> dict[str, Any]:
    r = await api.get(f"/transfers/{transfer_id}", headers=await bearer(hub, code))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# -- the happy paths ----------------------------------------------------------------------------


async def test_offer_accept_complete_with_the_sdk(
    hub: RunningHub, parties: dict[str, Party], api: httpx.AsyncClient
) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    transfer_id = tid()
    sealing = {
        code: Connector(
            code, hub.tenant_url(code), inbox_name=hub.inbox(code), system="test", sealer=parties[code].sealer
        )
        for code in ("GM0518", "GM0599")
    }
    async with sealing["GM0518"] as dh, sealing["GM0599"] as rd:
        offered = await sdk.offer(dh, "GM0599", {**DOSSIER, "transfer_id": transfer_id})
        assert offered.subject == transfer_id
        got = await routed(hub, offered, "GM0599")
        dossier = await rotterdam.sealer.open(got)
        assert isinstance(dossier, TransferOffered) and dossier.pupil.bsn == "111222333"
        sdk.check_subject(got, dossier)
        assert await state_of(hub, transfer_id) == "offered"

        accepted = await sdk.accept(rd, transfer_id, to="GM0518", note="Zaak overgenomen.")
        answer = await den_haag.sealer.open(await routed(hub, accepted, "GM0518"))
        assert isinstance(answer, TransferAccepted) and answer.transfer_id == transfer_id
        assert await state_of(hub, transfer_id) == "accepted"

        completed = await sdk.complete(dh, transfer_id, to="GM0599")
        await routed(hub, completed, "GM0599")
        assert await state_of(hub, transfer_id) == "completed"

    for code in ("GM0518", "GM0599"):
        body = await timeline(api, hub, code, transfer_id)
        assert body["offerer"] == "GM0518" and body["receiver"] == "GM0599" and body["state"] == "completed"
        steps = [(x["step"], x["actor"], x["acted_for"], x["event_id"]) for x in body["timeline"]]
        assert steps == [
            ("offered", "GM0518", None, offered.id),
            ("accepted", "GM0599", None, accepted.id),
            ("completed", "GM0518", None, completed.id),
        ]
        times = [x["at"] for x in body["timeline"]]
        assert times == sorted(times) and body["closed_at"] is not None
    assert "111222333" not in json.dumps(body)


async def test_reject_and_cancel(hub: RunningHub, parties: dict[str, Party], api: httpx.AsyncClient) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    first, second = tid(), tid()
    await routed(hub, await send(den_haag, "offered", first, "GM0599"), "GM0599")
    await routed(hub, await send(den_haag, "offered", second, "GM0599"), "GM0599")
    rejected = await send(rotterdam, "rejected", first, "GM0518", reason="not_resident")
    await routed(hub, rejected, "GM0518")
    cancelled = await send(den_haag, "cancelled", second, "GM0599", note="Dubbel verstuurd.")
    await routed(hub, cancelled, "GM0599")
    assert await state_of(hub, first) == "rejected"
    assert await state_of(hub, second) == "cancelled"
    body = await timeline(api, hub, "GM0599", second)
    assert [x["step"] for x in body["timeline"]] == ["offered", "cancelled"]


# -- refusals -------------------------------------------------------------------------------------


async def test_every_illegal_step_is_refused_with_a_clear_reason(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    dh, rd, af, ingrado = parties["GM0518"], parties["GM0599"], parties["GM0307"], parties["ingrado"]
    transfer_id = tid()

    # before any offer
    sent = await send(rd, "accepted", transfer_id, "GM0518")
    await refused(hub, sent, "GM0599", "invalid_transition", f"there is no transfer {transfer_id}")
    sent = await send(dh, "offered", transfer_id, "GM0599", subject=None)
    [rejection] = await hub.receive("GM0518", rejection_of(sent.id))
    assert rejection.data["reason"] == "schema_invalid" and rejection.data["field"] == "subject"
    assert "transfer id in `subject`" in rejection.data["message"]
    sent = await send(ingrado, "offered", tid(), "GM0599")
    await refused(hub, sent, "ingrado", "not_authorised", "association may not send")

    offered = await send(dh, "offered", transfer_id, "GM0599")
    await routed(hub, offered, "GM0599")

    # a second offer with that id: by its offerer, a clear "exists"; by anyone else, refused
    # for the id's prefix before the hub looks the id up (so it tells them nothing)
    sent = await send(dh, "offered", transfer_id, "GM0599")
    await refused(hub, sent, "GM0518", "invalid_transition", f"transfer {transfer_id} already exists")
    sent = await send(af, "offered", transfer_id, "GM0957")
    await refused(hub, sent, "GM0307", "not_authorised", "from GM0307 starts with tr-GM0307-")
    # the wrong party for the step
    sent = await send(dh, "accepted", transfer_id, "GM0599")
    await refused(hub, sent, "GM0518", "not_authorised", "only the receiver of a transfer may send")
    sent = await send(rd, "completed", transfer_id, "GM0518")
    await refused(hub, sent, "GM0599", "not_authorised", "only the offerer of a transfer may send")
    sent = await send(rd, "cancelled", transfer_id, "GM0518")
    await refused(hub, sent, "GM0599", "not_authorised", "only the offerer of a transfer may send")
    sent = await send(af, "accepted", transfer_id, "GM0518")
    await refused(hub, sent, "GM0307", "invalid_transition", f"there is no transfer {transfer_id} of yours")
    # the right party, addressed to someone else than the other party
    sent = await send(rd, "accepted", transfer_id, "GM0307")
    await refused(hub, sent, "GM0599", "not_authorised", "goes to GM0518 only")
    # the wrong moment
    sent = await send(dh, "completed", transfer_id, "GM0599")
    await refused(hub, sent, "GM0518", "invalid_transition", "the transfer is offered: transfer.completed")

    accepted = await send(rd, "accepted", transfer_id, "GM0518")
    await routed(hub, accepted, "GM0518")
    # the receiver answers twice: the second answer is refused, whatever it says
    for step, extra in (("accepted", {}), ("rejected", {"reason": "not_resident"})):
        sent = await send(rd, step, transfer_id, "GM0518", **extra)
        await refused(hub, sent, "GM0599", "invalid_transition", f"the transfer is accepted: transfer.{step}")
    sent = await send(dh, "cancelled", transfer_id, "GM0599")
    await refused(hub, sent, "GM0518", "invalid_transition", "from accepted only transfer.completed")

    completed = await send(dh, "completed", transfer_id, "GM0599")
    await routed(hub, completed, "GM0599")
    sent = await send(dh, "completed", transfer_id, "GM0599")
    await refused(hub, sent, "GM0518", "invalid_transition", "completed is final")
    assert await state_of(hub, transfer_id) == "completed"
    # nothing refused reached the other side
    assert not [e for e in await hub.drain("GM0599") if e.type.startswith(PREFIX)]


async def test_a_step_seen_again_ends_in_the_same_state(hub: RunningHub, parties: dict[str, Party]) -> None:
    dh, rd = parties["GM0518"], parties["GM0599"]
    transfer_id = tid()
    await routed(hub, await send(dh, "offered", transfer_id, "GM0599"), "GM0599")
    accepted = await send(rd, "accepted", transfer_id, "GM0518")
    await routed(hub, accepted, "GM0518")
    # the very same event again (a connector retry): the ledger drops it, nothing is refused
    await rd.connector.publish(accepted)
    assert not [e for e in await hub.drain("GM0599") if e.type == REJECTED]
    assert not [e for e in await hub.drain("GM0518") if e.id == accepted.id]
    # the router's redelivery after a crash: the workflow accepts the applied step again
    async with hub.db.session() as s, s.begin():
        sender = await registry.get_tenant(s, "GM0599")
        workflow = transfers_of(hub)
        verified = await hub.router.keys.check(s, "GM0599", accepted, spec_for(accepted.type), ["GM0518"])
        assert verified.sealed and verified.sender == "GM0599" and verified.event is accepted
        assert await workflow.check(s, sender, verified, ["GM0518"]) == ["GM0518"]
        await workflow.record(s, sender, verified, ["GM0518"])
    async with hub.db.session() as s:
        t = await s.get_one(Transfer, transfer_id)
        assert t.state == "accepted"
        assert [x.step for x in await s.run_sync(lambda _: t.steps)] == ["offered", "accepted"]


async def test_two_municipalities_offering_each_other_at_once(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    dh, rd = parties["GM0518"], parties["GM0599"]
    a, b = tid(), tid("GM0599")
    sent_a, sent_b = await asyncio.gather(send(dh, "offered", a, "GM0599"), send(rd, "offered", b, "GM0518"))
    await routed(hub, sent_a, "GM0599")
    await routed(hub, sent_b, "GM0518")
    assert (await state_of(hub, a), await state_of(hub, b)) == ("offered", "offered")
    # each answers the other's offer: two independent transfers
    await routed(hub, await send(rd, "accepted", a, "GM0518"), "GM0518")
    await routed(hub, await send(dh, "rejected", b, "GM0599", reason="already_registered"), "GM0599")
    assert (await state_of(hub, a), await state_of(hub, b)) == ("accepted", "rejected")


async def test_one_router_batch_reads_its_transfers_once_and_sees_its_own_steps(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    """The router decides a batch in one transaction: the transfers workflow reads the batch's
    transfers (and the steps with its event ids) in one statement each, not one per event, and
    a later event of the batch sees what an earlier one did (an offer, then its answer, then a
    second offer of the same id). Decided through the router's own decider in a transaction
    that is rolled back, so the shared hub keeps no trace of it."""
    dh, rd = parties["GM0518"], parties["GM0599"]
    first, others = tid(), [tid() for _ in range(12)]

    async def sealed(p: Party, step: str, transfer_id: str, to: str) -> CloudEvent:
        data = {**DOSSIER, "transfer_id": transfer_id} if step == "offered" else {"transfer_id": transfer_id}
        return await p.sealer.seal(p.connector.event(PREFIX + step, data, [to], subject=transfer_id))

    batch = [
        await sealed(dh, "offered", first, "GM0599"),
        await sealed(rd, "accepted", first, "GM0518"),
        await sealed(dh, "offered", first, "GM0599"),  # a new event offering a known id
        *[await sealed(dh, "offered", t, "GM0599") for t in others],
    ]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.split()).lower())

    engine = hub.db.engine.sync_engine
    async with hub.db.session() as s:
        tx = await s.begin()
        try:
            tenants = {c: await registry.get_tenant(s, c) for c in ("GM0518", "GM0599")}
            senders = ["GM0518", "GM0599", *["GM0518"] * (len(batch) - 2)]
            admitted = [
                (tenants[c], e, len(e.to_bytes()), False) for c, e in zip(senders, batch, strict=True)
            ]
            sa_event.listen(engine, "before_cursor_execute", seen)
            try:
                decisions = await hub.router.decider.decide_batch(s, admitted)
            finally:
                sa_event.remove(engine, "before_cursor_execute", seen)
            by_id = {d.original.id: d for d in decisions}
            assert by_id[batch[0].id].rejection is None and list(by_id[batch[0].id].seqs) == ["GM0599"]
            assert by_id[batch[1].id].rejection is None and list(by_id[batch[1].id].seqs) == ["GM0518"]
            assert by_id[batch[2].id].reason == "invalid_transition"
            assert all(by_id[e.id].rejection is None for e in batch[3:])
            t = await s.get_one(Transfer, first)
            assert t.state == "accepted"
            assert [x.step for x in await s.run_sync(lambda _: t.steps)] == ["offered", "accepted"]
            made = await s.scalars(select(Transfer).where(Transfer.transfer_id.in_(others)))
            assert {x.transfer_id for x in made} == set(others)
        finally:
            await tx.rollback()
    reads = [q for q in statements if q.startswith("select") and " from transfers " in f"{q} "]
    assert len(reads) == 1, reads  # one read (and lock) of the batch's transfers
    step_reads = [q for q in statements if q.startswith("select") and " from transfer_steps " in f"{q} "]
    assert len(step_reads) <= 1, step_reads
    async with hub.db.session() as s:
        assert await s.get(Transfer, first) is None  # rolled back


# -- time --------------------------------------------------------------------------------------------


async def test_reminder_then_expiry_on_a_controlled_clock(
    hub: RunningHub, parties: dict[str, Party], api: httpx.AsyncClient
) -> None:
    dh, rd = parties["GM0518"], parties["GM0599"]
    transfer_id = tid()
    await routed(hub, await send(dh, "offered", transfer_id, "GM0599"), "GM0599")
    async with hub.db.session() as s:
        t = await s.get_one(Transfer, transfer_id)
        offered_at, deadline, remind_at = t.offered_at, t.deadline_at, t.remind_at
    deadlines = transfers_of(hub).deadlines
    assert deadline == deadlines.deadline(offered_at) and remind_at == deadlines.remind_at(offered_at)
    assert remind_at is not None

    def about(kind: str) -> Callable[[CloudEvent], bool]:
        return lambda e: e.type == PREFIX + kind and e.subject == transfer_id

    await hub.router.sweep(now=remind_at - timedelta(minutes=1))
    assert not [e for e in await hub.drain("GM0599") if about("reminder")(e)]

    await hub.router.sweep(now=remind_at + timedelta(minutes=1))
    [reminder] = await hub.receive("GM0599", about("reminder"))
    assert reminder.source == hub.settings.hub_source and reminder.sequence is not None
    assert reminder.data["offerer"] == "GM0518"
    assert datetime.fromisoformat(reminder.data["deadline"]) == deadline
    await hub.router.sweep(now=remind_at + timedelta(hours=1))  # one reminder, not one per sweep
    assert not [e for e in await hub.drain("GM0599") if about("reminder")(e)]
    assert not [e for e in await hub.drain("GM0518") if about("reminder")(e)]  # the receiver's only

    expiry = deadline + timedelta(seconds=1)
    await hub.router.sweep(now=expiry)
    for code in ("GM0518", "GM0599"):
        [expired] = await hub.receive(code, about("expired"))
        assert datetime.fromisoformat(expired.data["expired_at"]) == expiry
    assert await state_of(hub, transfer_id) == "expired"
    await hub.router.sweep(now=expiry + timedelta(days=1))
    assert not [e for e in await hub.drain("GM0518") if about("expired")(e)]

    late = await send(rd, "accepted", transfer_id, "GM0518")
    await refused(hub, late, "GM0599", "invalid_transition", "the transfer is expired")
    body = await timeline(api, hub, "GM0518", transfer_id)
    assert [(x["step"], x["actor"]) for x in body["timeline"]] == [
        ("offered", "GM0518"),
        ("reminder", "hub"),
        ("expired", "hub"),
    ]
    assert body["reminded_at"] is not None and body["state"] == "expired"
    async with hub.db.session() as s:
        outcomes = set(
            await s.scalars(select(AuditRecord.outcome).where(AuditRecord.subject_ref == transfer_id))
        )
    assert {"reminded", "expired"} <= outcomes


async def test_an_answered_offer_gets_no_reminder_and_does_not_expire(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    dh, rd = parties["GM0518"], parties["GM0599"]
    transfer_id = tid()
    await routed(hub, await send(dh, "offered", transfer_id, "GM0599"), "GM0599")
    await routed(hub, await send(rd, "accepted", transfer_id, "GM0518"), "GM0518")
    await hub.router.sweep(now=datetime.now(UTC) + timedelta(days=60))
    for code in ("GM0518", "GM0599"):
        assert not [e for e in await hub.drain(code) if e.subject == transfer_id]
    assert await state_of(hub, transfer_id) == "accepted"


# -- a regional bureau -------------------------------------------------------------------------------


async def test_a_bureau_acts_for_its_members(
    hub: RunningHub, parties: dict[str, Party], api: httpx.AsyncClient
) -> None:
    dh, rd, bureau = parties["GM0518"], parties["GM0599"], parties[BUREAU]
    to_member, from_member, not_member = tid(), tid("GM0307"), tid()

    # an offer to Roermond, answered by the bureau for it
    await routed(hub, await send(dh, "offered", to_member, "GM0957"), "GM0957")
    accepted = await send(bureau, "accepted", to_member, "GM0518")
    await routed(hub, accepted, "GM0518")
    await routed(hub, await send(dh, "completed", to_member, "GM0957"), "GM0957")

    # an offer by Amersfoort, completed by the bureau for it
    await routed(hub, await send(parties["GM0307"], "offered", from_member, "GM0599"), "GM0599")
    await routed(hub, await send(rd, "accepted", from_member, "GM0307"), "GM0307")
    completed = await send(bureau, "completed", from_member, "GM0599")
    await routed(hub, completed, "GM0599")

    # not for a tenant that is no member
    await routed(hub, await send(dh, "offered", not_member, "GM0599"), "GM0599")
    sent = await send(bureau, "accepted", not_member, "GM0518")
    await refused(hub, sent, BUREAU, "invalid_transition", f"there is no transfer {not_member} of yours")

    body = await timeline(api, hub, "GM0518", to_member)
    assert [(x["step"], x["actor"], x["acted_for"]) for x in body["timeline"]] == [
        ("offered", "GM0518", None),
        ("accepted", BUREAU, "GM0957"),
        ("completed", "GM0518", None),
    ]
    body = await timeline(api, hub, BUREAU, from_member)  # the bureau sees its members' transfers
    assert body["timeline"][-1] == {
        **body["timeline"][-1],
        "step": "completed",
        "actor": BUREAU,
        "acted_for": "GM0307",
    }
    r = await api.get("/transfers", headers=await bearer(hub, BUREAU))
    mine = {x["transfer_id"] for x in r.json()}
    assert {to_member, from_member} <= mine and not_member not in mine
    r = await api.get(f"/transfers/{not_member}", headers=await bearer(hub, BUREAU))
    assert r.status_code == 404


# -- the sender's side -------------------------------------------------------------------------------


async def test_an_invalid_dossier_is_refused_before_anything_is_sent(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    bad = {**DOSSIER, "transfer_id": tid(), "pupil": {**DOSSIER["pupil"], "bsn": "123456789"}}
    async with hub.db.session() as s:
        before = len(list(await s.scalars(select(LedgerEvent.id).where(LedgerEvent.sender == "GM0518"))))
    async with Connector(
        "GM0518", hub.tenant_url("GM0518"), system="test", sealer=parties["GM0518"].sealer
    ) as c:
        with pytest.raises(SchemaInvalid) as caught:
            await sdk.offer(c, "GM0599", bad)
        assert caught.value.field == "pupil.bsn" and "123456789" not in caught.value.message
        assert c.stats.published == 0
    await asyncio.sleep(0.5)
    async with hub.db.session() as s:
        after = len(list(await s.scalars(select(LedgerEvent.id).where(LedgerEvent.sender == "GM0518"))))
    assert after == before
    assert await state_of(hub, bad["transfer_id"]) is None
    assert not [e for e in await hub.drain("GM0599") if e.subject == bad["transfer_id"]]


def test_the_cli_refuses_an_invalid_dossier_naming_the_field(tmp_path: Path, monkeypatch) -> None:
    async def tripwire(self: Connector) -> None:
        raise AssertionError("the CLI connected although the dossier is invalid")

    monkeypatch.setattr(Connector, "connect", tripwire)
    monkeypatch.setenv("TEST_TRANSFER_PASS", "correct horse battery staple")
    config = tmp_path / "c.toml"
    config.write_text(
        'tenant = "GM0518"\n'
        '[broker]\nurl = "amqp://127.0.0.1:5672/x"\nusername = "u"\npassword = "p"\n'
        '[hub]\nurl = "http://127.0.0.1:9"\ntoken = "inb_x"\n'
        '[keystore]\npath = "ks.json"\npassphrase_env = "TEST_TRANSFER_PASS"\n'
        '[store]\npath = "store.db"\n'
    )
    dossier = tmp_path / "dossier.json"
    bad = json.loads(json.dumps(DOSSIER))
    bad["guardians"][0]["email"] = "not-an-address"
    dossier.write_text(json.dumps(bad))
    runner = CliRunner()
    args = ["transfer", "offer", "--to", "GM0599", "--file", str(dossier), "--config", str(config)]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 1, result.output
    assert "dossier refused, nothing sent" in result.output and "guardians.0.email" in result.output
    assert "not-an-address" not in result.output
    # a configuration without a keystore cannot send sealed transfers
    config.write_text(
        config.read_text().replace(
            '[keystore]\npath = "ks.json"\npassphrase_env = "TEST_TRANSFER_PASS"\n', ""
        )
    )
    dossier.write_text(json.dumps(DOSSIER))
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 2 and "configure [keystore] and [hub]" in result.output


# -- the API -------------------------------------------------------------------------------------------


async def test_api_lists_gets_and_counts(
    hub: RunningHub, parties: dict[str, Party], api: httpx.AsyncClient
) -> None:
    dh, rd = parties["GM0518"], parties["GM0599"]
    operator = await bearer(hub, None)
    counts_before = (await api.get("/transfer-counts", headers=operator)).json()
    open_, done = tid(), tid("GM0599")
    await routed(hub, await send(dh, "offered", open_, "GM0599"), "GM0599")
    await routed(hub, await send(rd, "offered", done, "GM0518"), "GM0518")
    await routed(hub, await send(dh, "rejected", done, "GM0599", reason="other", note="Onbekend."), "GM0599")

    r = await api.get("/transfers", headers=await bearer(hub, "GM0518"), params={"limit": 1000})
    ids = {x["transfer_id"]: x for x in r.json()}
    assert open_ in ids and done in ids and ids[open_]["state"] == "offered"
    r = await api.get(
        "/transfers", headers=await bearer(hub, "GM0518"), params={"role": "offerer", "limit": 1000}
    )
    ids = {x["transfer_id"] for x in r.json()}
    assert open_ in ids and done not in ids
    r = await api.get(
        "/transfers",
        headers=await bearer(hub, "GM0518"),
        params={"role": "receiver", "state": "rejected", "limit": 1000},
    )
    assert done in {x["transfer_id"] for x in r.json()} and {x["state"] for x in r.json()} == {"rejected"}
    r = await api.get("/transfers", headers=await bearer(hub, "GM0518"), params={"state": "lost"})
    assert r.status_code == 422

    # others' transfers do not exist for you; the operator reads none
    for code in ("GM0307", "ingrado"):
        r = await api.get(f"/transfers/{open_}", headers=await bearer(hub, code))
        assert r.status_code == 404 and r.json()["reason"] == "not_found"
        assert open_ not in {
            x["transfer_id"] for x in (await api.get("/transfers", headers=await bearer(hub, code))).json()
        }
    assert (await api.get(f"/transfers/{open_}", headers=operator)).status_code == 403
    assert (await api.get("/transfers", headers=operator)).status_code == 403
    assert (await api.get("/transfers")).status_code == 401

    # the operator: counts per state and stuck transfers, metadata only
    r = await api.get("/transfer-counts", headers=operator)
    counts = r.json()
    assert set(counts) == {"offered", "accepted", "rejected", "completed", "cancelled", "expired"}
    assert counts["offered"] - counts_before["offered"] == 1
    assert counts["rejected"] - counts_before["rejected"] == 1
    assert (await api.get("/transfer-counts", headers=await bearer(hub, "GM0518"))).status_code == 403
    r = await api.get("/transfers-stuck", headers=operator, params={"days": 0, "limit": 1000})
    stuck = {x["transfer_id"]: x for x in r.json()}
    assert open_ in stuck and done not in stuck
    assert stuck[open_]["waiting_for"] == "receiver" and stuck[open_]["days_waiting"] == 0
    assert set(stuck[open_]) >= {"offerer", "receiver", "state", "offered_at", "deadline_at"}
    r = await api.get("/transfers-stuck", headers=operator, params={"days": 3})
    assert open_ not in {x["transfer_id"] for x in r.json()}
    assert (await api.get("/transfers-stuck", headers=await bearer(hub, "GM0518"))).status_code == 403


def transfers_of(hub: RunningHub) -> TransferWorkflow:
    """The transfers workflow the hub's router was given."""
    return next(w for w in hub.router.workflows if isinstance(w, TransferWorkflow))


class _BrokenOffers:
    """A transfers workflow with a bug for one transfer id, until it is fixed."""

    prefixes = ("transfer.offered",)

    def __init__(self, transfer_id: str, inner: TransferWorkflow) -> None:
        self.transfer_id, self.broken, self.inner = transfer_id, True, inner

    async def check(self, s, sender, verified, recipients):
        if verified.event.subject == self.transfer_id and self.broken:
            raise RuntimeError("simulated bug")
        return await self.inner.check(s, sender, verified, recipients)

    async def record(self, s, sender, verified, recipients) -> None:
        await self.inner.record(s, sender, verified, recipients)

    async def sweep(self, s, now: datetime):
        return []


async def test_a_sealed_offer_dead_lettered_by_a_bug_is_replayed_as_its_sender(
    hub: RunningHub, parties: dict[str, Party], api: httpx.AsyncClient
) -> None:
    """A sealed event's body is kept (it is ciphertext) and replayed, checked afresh."""
    transfer_id = tid()
    broken = _BrokenOffers(transfer_id, transfers_of(hub))
    hub.router.workflows.insert(0, broken)
    try:
        sent = await send(parties["GM0518"], "offered", transfer_id, "GM0599")
        dead = None
        for _ in range(100):
            listed = (await api.get("/dead-letters", headers=await bearer(hub, None))).json()
            dead = next(
                (
                    d
                    for d in listed
                    if d["sender"] == "GM0518" and d["reason"] == "delivery_limit" and d["body_kept"]
                ),
                None,
            )
            if dead:
                break
            await asyncio.sleep(0.2)
        assert dead is not None, "the offer was not dead-lettered"
        broken.broken = False
        replay = await api.post(f"/dead-letters/{dead['id']}/replay", headers=await bearer(hub, None))
        assert replay.status_code == 202, replay.text
        await routed(hub, sent, "GM0599")
        assert await state_of(hub, transfer_id) == "offered"
        [row] = [r for r in await ledger_rows_for(hub, sent.id)]
        assert row.sender == "GM0518" and row.status == "routed"
    finally:
        hub.router.workflows.remove(broken)


async def ledger_rows_for(hub: RunningHub, event_id: str) -> list[LedgerEvent]:
    async with hub.db.session() as s:
        return list(await s.scalars(select(LedgerEvent).where(LedgerEvent.event_id == event_id)))
