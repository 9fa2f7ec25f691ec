"""The workspace's notices page (`/notices`): ask the neighbours about a pupil of the local
register, see who answered "found", close a notice.

Everything goes through the connector's `NoticeDesk` (`connectors.notices`, wired by
`ConnectorServices.notice_desk`, as `inbeeld-connector notice send|list|close` does): the BSN
is blinded under the group's key and sent to a group the tenant is a member of; answers
arrive through `inbeeld-connector run`, whose desk records who found the pupil in the same
store, and a notice the hub refuses is marked `refused` by that runtime too (the page does
not wait for the hub's verdict). The desk asks groups only, so a notice goes to a group.
With `[notices] auto_answer = false` the runtime records a match of a received notice and
answers nothing: the page lists it, with the matched pupil, until an officer confirms and
"found" is sent (`NoticeDesk.confirm`). A finder's answer names its contact person; the desk
keeps it (`NoticeDesk.found_contacts`) and the list shows it beside the finder, with phone and
e-mail links.

The form shows the pupil's name and birth date: that view is written to the processing log
with the person's name (subject: the register row id), and so is every notice sent or
closed (subject: the notice id). Asking and closing need a role that may act; a viewer sees
the list, which holds no pupil data."""

from __future__ import annotations

import re
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from connectors import processing_log, register
from connectors.accounts import Account
from connectors.client import ConnectorError
from connectors.notices import OPEN, NoticeDesk, deadline_in
from connectors.workspace import edge as ws
from connectors.workspace import form_once
from schemas.envelope import describe_validation_error, error_field
from schemas.errors import Conflict, ContractError, NotFound
from schemas.events import ContactPoint
from schemas.processing_log import processing_activity_id

__all__ = ["add_notice_routes"]

log = structlog.get_logger("inbeeld.connector.workspace")
NOTICE_ACTIVITY = processing_activity_id("nl.leerplicht.notice")
CLOSE_REASONS = ("found", "withdrawn")
MAX_DAYS = 28  # the hub's default notice_ttl_days: a deadline further ahead is refused
_PUPIL_ID = re.compile(r"^[0-9a-f-]{36}$")
_ASKER = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _desk(request: Request) -> NoticeDesk:
    services = ws.services_of(request)
    if services.connector is None or services.sealer is None or services.directory is None:
        raise ConnectorError("the workspace has no connection to the hub and the broker")
    return services.notice_desk()


async def _my_groups(request: Request) -> dict[str, int]:
    """The groups this tenant is a member of, by name, with their number of members."""
    services = ws.services_of(request)
    assert services.directory is not None
    groups = await services.directory.groups()
    return {
        name: len(members) for name, members in sorted(groups.items()) if services.config.tenant in members
    }


def _pupil_id(value: str) -> str:
    if not _PUPIL_ID.fullmatch(value):
        raise ContractError("not a pupil of the register", field="pupil")
    return value


async def _pupil(request: Request, pupil_id: str) -> dict[str, Any]:
    found = await register.get(ws.store_of(request), _pupil_id(pupil_id))
    if found is None:
        raise NotFound("no such pupil in the register")
    return found


def _contact_defaults(request: Request) -> dict[str, str]:
    configured = ws.services_of(request).config.notices
    return {
        "department": (configured.department if configured else None) or "",
        "phone": (configured.phone if configured else None) or "",
        "email": (configured.email if configured else None) or "",
    }


def add_notice_routes(app: FastAPI) -> None:
    @app.get("/notices", response_class=HTMLResponse)
    async def notices_page(request: Request, account: ws.CurrentAccount) -> Response:
        desk = _desk(request)
        await desk.expire()
        asked = await desk.notices(role="asked")
        received = await desk.notices(role="received")
        contacts = {n.notice_id: await desk.found_contacts(n) for n in asked if n.found_by}
        awaiting = []
        for waiting, pupil_ref in await desk.awaiting():
            pupil = await register.get(ws.store_of(request), pupil_ref) if account.may_act else None
            if pupil is not None:
                await processing_log.record(
                    ws.store_of(request), account.name, "pupil_viewed", pupil_ref, activity_id=NOTICE_ACTIVITY
                )
            awaiting.append({"notice": waiting, "pupil": pupil})
        done = request.query_params.get("done")
        done_id = request.query_params.get("id", "")
        notice = (
            (f"notices.done_{done}", done_id)
            if done in ("sent", "closed", "confirmed", "already_sent")
            and done_id.startswith("nt-")
            and len(done_id) <= 64
            else None
        )
        return ws.pages.render(
            request,
            "notices.html",
            account=account,
            asked=asked,
            received=received,
            contacts=contacts,
            awaiting=awaiting,
            notice=notice,
            reasons=CLOSE_REASONS,
            open=OPEN,
        )

    async def _form_page(
        request: Request,
        account: Account,
        pupil: dict[str, Any],
        *,
        status: int = 200,
        values: dict[str, str] | None = None,
        error: tuple[str, str] | None = None,
    ) -> Response:
        groups = await _my_groups(request)
        # The nearest neighbours first: the smallest group is chosen unless another one is.
        nearest = min(groups, key=lambda name: groups[name], default="")
        shown = {**_contact_defaults(request), "days": "14", "group": nearest}
        shown.update(values or {})
        # One send per form (connectors.workspace.form_once): a double submit sends once.
        if not form_once.FORM_ID.fullmatch(shown.get("form_id", "")):
            shown["form_id"] = form_once.new_id()
        return ws.pages.render(
            request,
            "notice_new.html",
            status=status,
            account=account,
            pupil=pupil,
            groups=groups,
            values=shown,
            error=error,
            max_days=MAX_DAYS,
        )

    @app.get("/notices/new", response_class=HTMLResponse)
    async def new_notice(request: Request, account: ws.ActingAccount) -> Response:
        _desk(request)  # without the hub and broker, say so before showing the pupil
        pupil = await _pupil(request, request.query_params.get("pupil", ""))
        await processing_log.record(
            ws.store_of(request), account.name, "pupil_viewed", pupil["id"], activity_id=NOTICE_ACTIVITY
        )
        return await _form_page(request, account, pupil)

    @app.post("/notices", response_class=HTMLResponse)
    async def send_notice(request: Request, account: ws.ActingAccount) -> Response:
        form = await ws.read_form(request)
        desk = _desk(request)
        pupil = await _pupil(request, form.get("pupil", ""))
        values = {
            k: form.get(k, "").strip() for k in ("group", "department", "phone", "email", "days", "form_id")
        }
        groups = await _my_groups(request)
        if values["group"] not in groups:
            return await _form_page(
                request, account, pupil, status=400, values=values, error=("group", "not a group of yours")
            )
        days = int(values["days"]) if values["days"].isdigit() else 0
        if not 1 <= days <= MAX_DAYS:
            why = f"a whole number of days from 1 to {MAX_DAYS}"
            return await _form_page(request, account, pupil, status=400, values=values, error=("days", why))
        try:
            contact = ContactPoint.model_validate({k: values[k] for k in ("department", "phone", "email")})
        except ValidationError as exc:
            field = error_field(exc) or "contact"
            why = describe_validation_error(exc, limit=1, root="contact").split(": ", 1)[-1]
            return await _form_page(request, account, pupil, status=400, values=values, error=(field, why))
        form_id = form.get("form_id", "")
        if not form_once.FORM_ID.fullmatch(form_id):
            raise ContractError("the form has no valid form id; open it again", field="form_id")
        store = ws.store_of(request)
        earlier = await form_once.claim(store, "notice", form_id)
        if earlier is not None:  # submitted twice: nothing is sent again
            log.info("workspace.notice_resubmitted", notice_id=earlier or None, user=account.name)
            return ws.redirect_to(request, "/notices", done="already_sent", id=earlier or "nt-")
        try:
            notice_id = await desk.send_missing(values["group"], pupil["bsn"], contact, deadline_in(days))
        except BaseException:
            await form_once.release(store, "notice", form_id)
            raise
        await form_once.sent(store, "notice", form_id, notice_id)
        await processing_log.record(
            ws.store_of(request), account.name, "notice_sent", notice_id, activity_id=NOTICE_ACTIVITY
        )
        log.info("workspace.notice_sent", notice_id=notice_id, group=values["group"], user=account.name)
        return ws.redirect_to(request, "/notices", done="sent", id=notice_id)

    @app.post("/notices/{notice_id}/close")
    async def close_notice(request: Request, notice_id: str, account: ws.ActingAccount) -> Response:
        form = await ws.read_form(request)
        reason = form.get("reason", "found")
        if reason not in CLOSE_REASONS:
            raise ContractError(f"a reason is one of {', '.join(CLOSE_REASONS)}", field="reason")
        desk = _desk(request)
        notice = await desk.get(notice_id[:64])
        if notice is None or notice.role != "asked":
            raise NotFound("no notice of ours")
        if notice.state != OPEN:
            raise ContractError(f"the notice is {notice.state} already", field="notice_id")
        await desk.close(notice.notice_id, reason)
        await processing_log.record(
            ws.store_of(request), account.name, "notice_closed", notice.notice_id, activity_id=NOTICE_ACTIVITY
        )
        log.info("workspace.notice_closed", notice_id=notice.notice_id, reason=reason, user=account.name)
        return ws.redirect_to(request, "/notices", done="closed", id=notice.notice_id)

    @app.post("/notices/received/{asker}/{notice_id}/confirm")
    async def confirm_found(
        request: Request, asker: str, notice_id: str, account: ws.ActingAccount
    ) -> Response:
        await ws.read_form(request)
        if not _ASKER.fullmatch(asker) or not notice_id.startswith("nt-") or len(notice_id) > 64:
            raise NotFound("no such notice")
        try:
            await _desk(request).confirm(asker, notice_id)
        except Conflict:
            return ws.pages.error_page(request, 409, "notices.already", id=notice_id)
        await processing_log.record(
            ws.store_of(request), account.name, "notice_answered", notice_id, activity_id=NOTICE_ACTIVITY
        )
        log.info("workspace.notice_answered", notice_id=notice_id, asker=asker, user=account.name)
        return ws.redirect_to(request, "/notices", done="confirmed", id=notice_id)
