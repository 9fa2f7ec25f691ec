"""Demo step: a neighbour notice. Den Haag cannot reach a pupil and asks `zuid-holland`;
Rotterdam's register holds him, so Rotterdam answers Den Haag alone; Den Haag closes.

What travels: a group key sealed to the members, a signed notice with only a blind index,
a sealed answer, a signed close. What the hub keeps: who asked whom, when, and the state.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table
from sqlalchemy import select

from connectors import Connector
from connectors.directory import Directory
from connectors.group_keys import GroupKeyring
from connectors.notices import NOTICE_TYPES, NoticeDesk, NoticeOutcome
from connectors.register import import_csv
from connectors.sealing import Sealer
from connectors.store import LocalStore
from demo.context import DemoContext
from demo.support import register_keys, tenant_dir
from hub.api.app import create_app
from hub.store.models import AuditRecord, Notice
from schemas.envelope import CloudEvent

__all__ = ["step_notice"]

GROUP = "zuid-holland"
ASKER, HOLDER = "GM0518", "GM0599"
PUPIL_BSN = "111222333"  # a test BSN (passes the 11-test, belongs to nobody)
REGISTER = (
    "bsn,given_names,family_name,birth_date,street,house_number,postcode,city,municipality,"
    "school_brin,school_name,school_level\n"
    f"{PUPIL_BSN},Sanne Maria,Voorbeeld,2014-05-17,Proefstraat,12,3011 AA,Rotterdam,GM0599,"
    "12AB,Basisschool De Proeftuin,po\n"
    "123456782,Noor,Testmans,2013-02-01,Testkade,2,3011 AB,Rotterdam,GM0599,13CD,Het Proefcollege,vo\n"
)
CONTACT = {"department": "Leerlingzaken", "phone": "14 070", "email": "leerplicht@denhaag.example"}
PEOPLE = {
    ASKER: {"name": "M. de Vries", "department": "Leerlingzaken", "phone": "14 070"},
    HOLDER: {"name": "A. Bakker", "department": "Leerplicht", "phone": "14 010"},
}


@dataclass
class _Tenant:
    code: str
    connector: Connector
    directory: Directory
    store: LocalStore
    desk: NoticeDesk


async def _tenant(ctx: DemoContext, code: str, http: httpx.AsyncBaseTransport) -> _Tenant:
    """A connector's notice side: its keystore (registered with the hub), local store, desk.
    Reuses `ctx.keystores[code]` when an earlier step made one."""
    keystore, directory = await register_keys(ctx, code, http)
    store = await LocalStore.open(tenant_dir(ctx, code) / "store.db", keystore)
    connector = ctx.connectors[code]
    sealer = Sealer(keystore, directory, code)
    keyring = GroupKeyring(store, code, directory)
    desk = NoticeDesk(connector, sealer, store, keyring, contact_person=PEOPLE[code])
    return _Tenant(code, connector, directory, store, desk)


async def _deliver(t: _Tenant, want: int, timeout: float = 15.0) -> list[NoticeOutcome]:
    """Hand the next `want` notice events in `t`'s inbox to its desk (others are acked)."""
    events: list[CloudEvent] = []

    async def read() -> None:
        async for message in t.connector.inbox(idle_timeout=timeout):
            await message.ack()
            if message.event.type in NOTICE_TYPES:
                events.append(message.event)
                if len(events) >= want:
                    return

    await asyncio.wait_for(read(), timeout)
    if len(events) < want:
        raise RuntimeError(f"{t.code} received {len(events)} of {want} notice events")
    return [await t.desk.handle(e) for e in events]


async def step_notice(ctx: DemoContext) -> None:
    transport = httpx.ASGITransport(app=create_app(ctx.settings, ctx.db))
    haag = await _tenant(ctx, ASKER, transport)
    rdam = await _tenant(ctx, HOLDER, transport)
    try:
        csv = _write(ctx, REGISTER)
        report = await import_csv(rdam.store, csv)
        csv.unlink()  # the register lives encrypted in the store, not in a CSV beside it
        ctx.console.print(f"{ctx.names[HOLDER]} keeps {report.imported} pupils in its encrypted register")

        deadline = datetime.now(UTC) + timedelta(days=14)
        notice_id = await haag.desk.send_missing(GROUP, PUPIL_BSN, CONTACT, deadline)
        key = await haag.desk.keyring.current(GROUP)
        ctx.console.print(
            f"{ctx.names[ASKER]} cannot reach a pupil and asks group [bold]{GROUP}[/]: notice "
            f"{notice_id}, blind index under group key {key.key_id[:12] if key else '?'}…, "
            "the key itself shared sealed with the other members only"
        )
        at_holder = await _deliver(rdam, 2)
        answered = next(o for o in at_holder if o.notice_id == notice_id)
        [found] = await _deliver(haag, 1)
        assert found.found is not None
        school = found.found.school
        ctx.console.print(
            f"{ctx.names[HOLDER]} matched the blind index in its own register and answered "
            f"{ctx.names[ASKER]} alone ({answered.kind}): school "
            f"{school.name if school else 'unknown'}, contact {found.found.contact.name}"
        )
        await haag.desk.close(notice_id, "found")
        [closed] = await _deliver(rdam, 1)
        ctx.console.print(f"{ctx.names[ASKER]} closes the notice; {ctx.names[HOLDER]}: {closed.kind}")

        table = Table("who", "activity", "other party", "outcome", title=f"audit of notice {notice_id}")
        rows: list[dict[str, Any]] = []
        for t in (haag, rdam):
            for a in await t.desk.audit(notice_id):
                table.add_row(ctx.names[t.code], a.activity, a.counterpart or "", a.outcome)
                rows.append(
                    {
                        "log": t.code,
                        "activity": a.activity,
                        "counterpart": a.counterpart,
                        "outcome": a.outcome,
                    }
                )
        async with ctx.db.session() as s:
            notice = await s.get(Notice, (ASKER, notice_id))
            logged = [*await haag.desk.audit(notice_id), *await rdam.desk.audit(notice_id)]
            ids = sorted({a.event_id for a in logged if a.event_id})
            for r in await s.scalars(select(AuditRecord).where(AuditRecord.subject_ref.in_(ids))):
                table.add_row("hub", r.activity, f"{r.sender} -> {', '.join(r.recipients)}", r.outcome)
                rows.append({"log": "hub", "activity": r.activity, "sender": r.sender, "outcome": r.outcome})
        ctx.console.print(table)
        ctx.results["notice"] = {
            "notice_id": notice_id,
            "asked": GROUP,
            "answered_by": found.sender,
            "hub_state": notice.state if notice else None,
            "audit": rows,
        }
        if found.sender != HOLDER or notice is None or notice.state != "closed":
            raise RuntimeError("the notice did not end as it should")
    finally:
        for t in (haag, rdam):
            await t.directory.api.aclose()
            await t.store.close()


def _write(ctx: DemoContext, text: str) -> Path:
    path = ctx.out / "connectors" / HOLDER / "register.csv"
    path.write_text(text, encoding="utf-8")
    return path
