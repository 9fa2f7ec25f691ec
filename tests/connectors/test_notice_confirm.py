"""A notice answered only after a person confirms (`auto_answer` off: the workspace's notices
page), and the finder's contact person kept for the asker, with the real hub and broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors import register
from schemas.errors import Conflict, NotFound
from tests.connectors.test_notices import CONTACT, Desk, app, desks, load_register, pump, soon
from tests.utils.hubs import RunningHub

__all__ = ["app", "desks"]  # fixtures

pytestmark = pytest.mark.broker


async def test_a_match_waits_for_a_person_and_the_finders_contact_is_kept(
    hub: RunningHub, desks: dict[str, Desk], tmp_path: Path
) -> None:
    haag, rdam = desks["GM0518"], desks["GM0599"]
    rdam.desk.auto_answer = False
    await load_register(rdam, tmp_path, "111222333")
    notice_id = await haag.desk.send_missing("zuid-holland", "111222333", CONTACT, soon())
    assert [o.kind for o in await pump(hub, rdam, 2)] == ["key_stored", "matched"]
    drained = await hub.drain("GM0518", quiet=0.3)  # (hub notices of key rotations, ...)
    assert not [e for e in drained if e.subject == notice_id]  # nothing answered yet

    [(waiting, pupil_ref)] = await rdam.desk.awaiting()
    pupil = await register.lookup(rdam.store, "111222333")
    assert waiting.notice_id == notice_id and waiting.asker == "GM0518"
    assert pupil is not None and pupil_ref == pupil["id"]
    assert (await haag.desk.get(notice_id)).found_by == []  # type: ignore[union-attr]

    answer = await rdam.desk.confirm("GM0518", notice_id)
    assert answer.subject == notice_id
    assert await rdam.desk.awaiting() == []
    with pytest.raises(Conflict):
        await rdam.desk.confirm("GM0518", notice_id)  # a second confirmation sends nothing
    with pytest.raises(NotFound):
        await rdam.desk.confirm("GM0518", "nt-unknown")
    assert [(a.activity, a.outcome) for a in await rdam.desk.audit(notice_id)] == [
        ("notice.checked", "match"),
        ("notice.answered", "sent"),
    ]

    [found] = await pump(hub, haag, 1)
    assert found.kind == "found" and found.sender == "GM0599"
    notice = await haag.desk.get(notice_id)
    assert notice is not None and notice.found_by == ["GM0599"]
    contacts = await haag.desk.found_contacts(notice)
    assert contacts["GM0599"].name == "Leerplichtambtenaar GM0599"
    assert contacts["GM0599"].phone == "010 267 1000"
    assert not [e for e in await hub.drain("GM0518", quiet=0.3) if e.subject == notice_id]  # once
