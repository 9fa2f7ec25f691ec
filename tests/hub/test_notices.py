"""The hub's notice workflow through the real broker: who may answer or close a notice, when
it is over (closed, expired), what the API shows, and that the hub keeps no index."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from connectors.keystore import Keystore
from connectors.sealing import Sealer
from hub.api.app import create_app
from hub.store.models import AuditRecord, Notice
from hub.workflows.notices import NoticeWorkflow
from schemas.envelope import CloudEvent
from schemas.events import PupilMissing, spec_for
from tests.e2e.conftest import TENANTS, Party, make_directory
from tests.utils.hubs import RunningHub
from tests.utils.keys import install_keys

pytestmark = pytest.mark.broker

MISSING = "nl.leerplicht.notice.pupil_missing"
FOUND = "nl.leerplicht.notice.pupil_found"
CLOSED = "nl.leerplicht.notice.closed"
REJECTED = "nl.leerplicht.hub.rejected"
CONTACT = {"department": "Leerplicht", "phone": "070 353 3000", "email": "leerplicht@denhaag.example"}


@pytest.fixture
def app(hub: RunningHub) -> FastAPI:
    return create_app(hub.settings, hub.db)


@pytest.fixture
async def parties(hub: RunningHub, app: FastAPI, tmp_path: Path) -> AsyncIterator[dict[str, Party]]:
    out: dict[str, Party] = {}
    for code in TENANTS:
        ks = Keystore.create(tmp_path / f"{code}.keystore", kek=os.urandom(32))
        directory = await make_directory(hub, app, code)
        party = Party(code, ks, directory, Sealer(ks, directory, code), await hub.connector(code))
        await install_keys(hub, code, ks.public_jwks())  # a fresh keystore for a seed tenant
        out[code] = party
        await hub.drain(code, quiet=0.3)
    yield out
    for party in out.values():
        await party.directory.api.aclose()


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        yield client


def nid() -> str:
    return f"nt-{uuid.uuid4().hex}"


def missing_data(notice_id: str, deadline: datetime | None = None) -> dict[str, Any]:
    return {
        "notice_id": notice_id,
        "blind_index": uuid.uuid4().hex * 2,
        "group_key_id": "k" * 43,
        "contact": CONTACT,
        "deadline": (deadline or datetime.now(UTC) + timedelta(days=7)).isoformat(),
    }


async def send(p: Party, type_: str, data: dict[str, Any], to: list[str], subject: str | None) -> CloudEvent:
    event = p.connector.event(type_, data, to, subject=subject)
    return await p.connector.publish(await p.sealer.seal(event))


async def ask(p: Party, group: str = "zuid-holland", **kw: Any) -> tuple[str, CloudEvent]:
    notice_id = nid()
    return notice_id, await send(p, MISSING, missing_data(notice_id, **kw), [f"group:{group}"], notice_id)


async def answer(p: Party, asker: str, notice_id: str) -> CloudEvent:
    return await send(
        p, FOUND, {"notice_id": notice_id, "contact": {"name": "J. Jansen"}}, [asker], notice_id
    )


async def close(p: Party, notice_id: str, group: str = "zuid-holland") -> CloudEvent:
    data = {"notice_id": notice_id, "reason": "found"}
    return await send(p, CLOSED, data, [f"group:{group}"], notice_id)


def is_(event: CloudEvent):  # type: ignore[no-untyped-def]
    return lambda e: e.id == event.id


async def rejected(hub: RunningHub, code: str, event: CloudEvent) -> str:
    [r] = await hub.receive(code, lambda e: e.type == REJECTED and e.data["event_id"] == event.id)
    return str(r.data["reason"])


async def test_only_recipients_answer_only_the_asker_closes(
    hub: RunningHub, parties: dict[str, Party], api: httpx.AsyncClient
) -> None:
    haag, rdam, amf = parties["GM0518"], parties["GM0599"], parties["GM0307"]
    notice_id, missing = await ask(haag)
    await hub.receive("GM0599", is_(missing))

    stranger = await answer(amf, "GM0518", notice_id)
    assert await rejected(hub, "GM0307", stranger) == "not_authorised"
    usurper = await close(rdam, notice_id)
    assert await rejected(hub, "GM0599", usurper) == "not_authorised"

    found = await answer(rdam, "GM0518", notice_id)
    [got] = await hub.receive("GM0518", is_(found))
    assert got.subject == notice_id and got.recipients == ["GM0518"]

    closing = await close(haag, notice_id)
    await hub.receive("GM0599", is_(closing))
    late = await answer(rdam, "GM0518", notice_id)
    assert await rejected(hub, "GM0599", late) == "invalid_transition"
    again = await close(haag, notice_id)
    assert await rejected(hub, "GM0518", again) == "invalid_transition"
    assert not [e for e in await hub.drain("GM0518") if e.id == late.id]

    async with hub.db.session() as s:
        notice = await s.get(Notice, ("GM0518", notice_id))
        assert notice is not None
        assert (notice.state, notice.recipients, notice.close_reason) == ("closed", ["GM0599"], "found")
        # The pupil_found is in the hub's audit log with both parties.
        record = await s.scalar(select(AuditRecord).where(AuditRecord.subject_ref == found.id))
        assert record is not None
        assert (record.sender, record.recipients, record.outcome) == ("GM0599", ["GM0518"], "routed")
        assert record.activity == "route notice.pupil_found"

    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    mine = (await api.get("/notices", headers=auth(await hub.token("tenant", "GM0518")))).json()
    [item] = [n for n in mine if n["notice_id"] == notice_id]
    assert item["role"] == "asked" and item["state"] == "closed" and item["answered_by"] == ["GM0599"]
    theirs = (
        await api.get("/notices?role=received", headers=auth(await hub.token("tenant", "GM0599")))
    ).json()
    [item] = [n for n in theirs if n["notice_id"] == notice_id]
    assert (
        item["role"] == "received" and item["recipients"] == ["GM0599"] and item["answered_by"] == ["GM0599"]
    )
    others = (await api.get("/notices", headers=auth(await hub.token("tenant", "GM0307")))).json()
    assert notice_id not in {n["notice_id"] for n in others}
    op = auth(await hub.token("operator"))
    counts = (await api.get("/notice-counts", headers=op)).json()
    assert counts["by_state"]["closed"] >= 1 and counts["answers"] >= 1
    assert (await api.get("/notices", headers=op)).status_code == 403


async def test_expiry_by_the_sweep_and_refused_deadlines(hub: RunningHub, parties: dict[str, Party]) -> None:
    haag, rdam = parties["GM0518"], parties["GM0599"]
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    notice_id, missing = await ask(haag, deadline=deadline)
    await hub.receive("GM0599", is_(missing))
    # The sweep with a clock just past this deadline (and before anyone else's).
    await hub.router.sweep(now=deadline + timedelta(seconds=1))
    async with hub.db.session() as s:
        notice = await s.get(Notice, ("GM0518", notice_id))
        assert notice is not None and notice.state == "expired"
        audit = await s.scalar(
            select(AuditRecord).where(AuditRecord.subject_ref == notice_id, AuditRecord.outcome == "expired")
        )
        assert audit is not None and audit.sender == "GM0518"
    late = await answer(rdam, "GM0518", notice_id)
    assert await rejected(hub, "GM0599", late) == "invalid_transition"

    _, past = await ask(haag, deadline=datetime.now(UTC) - timedelta(minutes=1))
    assert await rejected(hub, "GM0518", past) == "schema_invalid"
    _, far = await ask(haag, deadline=datetime.now(UTC) + timedelta(days=365))
    assert await rejected(hub, "GM0518", far) == "schema_invalid"
    other = nid()
    wrong_subject = await send(haag, MISSING, missing_data(nid()), ["group:zuid-holland"], other)
    assert await rejected(hub, "GM0518", wrong_subject) == "schema_invalid"
    unknown = await answer(rdam, "GM0518", nid())
    assert await rejected(hub, "GM0599", unknown) == "invalid_transition"


async def test_a_notice_id_once_and_no_association_is_asked(
    hub: RunningHub, parties: dict[str, Party]
) -> None:
    haag = parties["GM0518"]
    notice_id, missing = await ask(haag, group="landelijk")
    for code in ("GM0599", "GM0307", "GM0957"):
        await hub.receive(code, is_(missing))
    assert missing.id not in {e.id for e in await hub.drain("ingrado")}
    reuse = await send(haag, MISSING, missing_data(notice_id), ["group:landelijk"], notice_id)
    assert await rejected(hub, "GM0518", reuse) == "invalid_transition"
    async with hub.db.session() as s:
        notice = await s.get(Notice, ("GM0518", notice_id))
        assert notice is not None and notice.recipients == ["GM0307", "GM0599", "GM0957"]


async def test_a_replayed_step_gets_the_same_recipients(hub: RunningHub, parties: dict[str, Party]) -> None:
    """What the router relies on after a crash: check() accepts a step it already applied."""
    haag = parties["GM0518"]
    notice_id, missing = await ask(haag)
    await hub.receive("GM0599", is_(missing))
    async with hub.db.session() as s, s.begin():
        from hub import registry

        sender = await registry.get_tenant(s, "GM0518")
        workflow = next(w for w in hub.router.workflows if isinstance(w, NoticeWorkflow))
        verified = await hub.router.keys.check(s, "GM0518", missing, spec_for(missing.type), ["GM0599"])
        assert not verified.sealed and verified.payload_as(PupilMissing).notice_id == notice_id
        assert await workflow.check(s, sender, verified, ["GM0599"]) == ["GM0599"]
    closing = await close(haag, notice_id)
    await hub.receive("GM0599", is_(closing))
    async with hub.db.session() as s, s.begin():
        verified = await hub.router.keys.check(s, "GM0518", closing, spec_for(closing.type), ["GM0599"])
        assert await workflow.check(s, sender, verified, ["GM0599"]) == ["GM0599"]


async def test_the_hub_keeps_no_index(hub: RunningHub, parties: dict[str, Party]) -> None:
    haag = parties["GM0518"]
    notice_id = nid()
    data = missing_data(notice_id)
    missing = await send(haag, MISSING, data, ["group:zuid-holland"], notice_id)
    await hub.receive("GM0599", is_(missing))
    async with hub.db.session() as s:
        notice = await s.get(Notice, ("GM0518", notice_id))
        assert notice is not None
        stored = repr([getattr(notice, c.key) for c in Notice.__table__.columns])
    assert data["blind_index"] not in stored and data["group_key_id"] not in stored
    assert "leerplicht@denhaag.example" not in stored
