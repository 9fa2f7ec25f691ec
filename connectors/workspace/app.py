"""The workspace's routes. Every page but the login needs a session; opening a dossier and
answering or closing a transfer need a role that may act (`connectors.accounts`). Every view
of a dossier and every answer is written to the processing log with the person's name.

Forms are plain POSTs with a redirect after success (htmx is not needed for them); each carries
the session's CSRF token."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from connectors import accounts, offers, processing_log, register, transfers
from connectors.accounts import Account
from connectors.client import ConnectorError
from connectors.services import ConnectorServices
from connectors.workspace import bureau
from connectors.workspace.edge import (
    ActingAccount,
    AlreadyAnswered,
    CsrfRefused,
    CurrentAccount,
    Forbidden,
    NotLoggedIn,
    UnknownProxyUser,
    connector_of,
    pages,
    read_form,
    redirect_to,
    services_of,
    store_of,
)
from connectors.workspace.i18n import translate_to
from connectors.workspace.identity import ProxyIdentity
from connectors.workspace.notice_pages import add_notice_routes
from connectors.workspace.offer_pages import add_offer_routes
from connectors.workspace.register_pages import add_register_routes
from connectors.workspace.report_pages import add_report_routes
from connectors.workspace.studio import add_studio_routes
from schemas.errors import ContractError, InbeeldError, NotFound
from schemas.validation import validate_payload
from webui import assets, i18n
from webui.catch_all import CatchAll
from webui.security import SecurityHeaders
from webui.sessions import SessionMiddleware, session_of

__all__ = ["COOKIE", "create_workspace"]

log = structlog.get_logger("inbeeld.connector.workspace")
COOKIE = "inbeeld_workspace_session"
REASONS = ("not_resident", "unknown_address", "already_registered", "other")
DONE = (
    "accepted",
    "rejected",
    "completed",
    "cancelled",
    "offered",
    "already_offered",
    "accepted_for_member",
    "rejected_for_member",
)
STATES = ("offered", "accepted", "rejected", "completed", "cancelled", "expired")
_TRANSFER_ID = re.compile(r"^[!-~]{1,100}$")


def create_workspace(
    services: ConnectorServices,
    *,
    secret: str | None = None,
    idle_minutes: int = 30,
    proxy: ProxyIdentity | None = None,
    theme: str = assets.DEFAULT_THEME,
) -> FastAPI:
    """The workspace over opened services: the store with its keystore (required), the hub API
    and a connected sealing broker client (without them the outgoing list and the answers
    say the hub cannot be reached). `proxy`: accept the identity a reverse proxy vouches for
    (`connectors.workspace.identity`). `theme`: the NL Design System tokens the pages wear
    (`webui.assets.THEMES`)."""
    if services.store is None or services.store.keystore is None:
        raise ValueError("the workspace needs the local store with its keystore")
    if theme not in assets.THEMES:
        raise ValueError(f"unknown theme {theme!r}: one of {', '.join(assets.THEMES)}")
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.services = services
    app.state.proxy = proxy
    app.state.theme = theme

    async def too_long(scope: Scope, receive: Receive, send: Send) -> None:
        t = translate_to(i18n.DEFAULT)
        await HTMLResponse(f"<!doctype html><title>414</title><p>{t('error.414')}</p>", 414)(
            scope, receive, send
        )

    app.add_middleware(
        CatchAll,
        error_page=lambda request: pages.error_page(request, 500, "error.500"),
        event="workspace.bug",
    )
    app.add_middleware(
        SessionMiddleware, secret=secret or secrets.token_urlsafe(32), idle=idle_minutes * 60, cookie=COOKIE
    )
    app.add_middleware(SecurityHeaders, too_long=too_long)
    app.mount("/static", assets.static_files(), name="static")
    _install_errors(app)
    _add_routes(app)
    add_register_routes(app)
    add_notice_routes(app)
    add_report_routes(app)
    add_offer_routes(app)
    add_studio_routes(app)
    return app


def _transfer_id(transfer_id: str) -> str:
    if not _TRANSFER_ID.fullmatch(transfer_id):
        raise ContractError("not a transfer id", field="transfer_id")
    return transfer_id


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(NotLoggedIn)
    async def _login_first(request: Request, _exc: NotLoggedIn) -> Response:
        return redirect_to(request, "/login", **({"expired": "1"} if session_of(request).expired else {}))

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused) -> Response:
        log.warning("workspace.csrf_refused", path=request.url.path)
        return pages.error_page(request, 403, "error.csrf")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        log.warning("workspace.forbidden", path=request.url.path, user=session_of(request).user)
        return pages.error_page(request, 403, "error.403")

    @app.exception_handler(UnknownProxyUser)
    async def _unknown_proxy_user(request: Request, exc: UnknownProxyUser) -> Response:
        log.warning("workspace.proxy_user_unknown", user=exc.name)
        return pages.error_page(request, 403, "error.proxy_user", name=exc.name[:60])

    @app.exception_handler(AlreadyAnswered)
    async def _answered(request: Request, exc: AlreadyAnswered) -> Response:
        state = translate_to(i18n.choose(request))(f"state.{exc.state}") if exc.state in STATES else exc.state
        return pages.error_page(request, 409, "error.409", state=state)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, _exc: RequestValidationError) -> Response:
        return pages.error_page(request, 400, "error.400", message="invalid parameter")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        status = exc.status_code if exc.status_code in (403, 404, 405, 413, 414) else 400
        return pages.error_page(request, status, f"error.{status}", message=str(exc.detail))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, _exc: NotFound) -> Response:
        return pages.error_page(request, 404, "error.404")

    @app.exception_handler(ContractError)
    async def _refused(request: Request, exc: ContractError) -> Response:
        return pages.error_page(request, 400, "error.400", message=exc.message)

    @app.exception_handler(InbeeldError)  # the hub or the broker cannot be reached (or refuses)
    async def _unavailable(request: Request, exc: InbeeldError) -> Response:
        log.warning("workspace.unavailable", path=request.url.path, error=type(exc).__name__)
        return pages.error_page(request, 503, "error.503")


async def _hub_transfers(services: ConnectorServices) -> list[dict[str, Any]] | None:
    """This tenant's transfers as the hub tracks them, or None when the hub cannot say."""
    if services.hub_api is None:
        return None
    try:
        return await transfers.TransferStatus(services.hub_api).list(role="all")
    except (InbeeldError, OSError) as exc:
        log.warning("workspace.hub_unavailable", error=type(exc).__name__)
        return None


def _pupil_for_register(dossier: Mapping[str, Any]) -> dict[str, Any]:
    """A register record from an accepted dossier: its pupil at the new address if known."""
    pupil = dossier["pupil"]
    return {
        "bsn": pupil["bsn"],
        "given_names": pupil["given_names"],
        "family_name_prefix": pupil.get("family_name_prefix"),
        "family_name": pupil["family_name"],
        "birth_date": pupil["birth_date"],
        "address": dossier.get("new_address") or dossier["previous_address"],
        "school": dossier.get("school"),
    }


def _add_routes(app: FastAPI) -> None:
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        if session_of(request).user is not None:
            return redirect_to(request, "/")
        notice = "login.expired" if request.query_params.get("expired") else None
        notice = "login.logged_out" if request.query_params.get("bye") else notice
        return pages.render(request, "webui/login.html", notice=notice, error=None, name="")

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        name = form.get("name", "").strip()[:100]
        attempt = await accounts.attempt(store_of(request), name, form.get("password", ""))
        log.info("workspace.login", user=name if attempt.outcome == "ok" else None, outcome=attempt.outcome)
        if attempt.outcome == "ok":
            session_of(request).log_in(name)
            return redirect_to(request, "/")
        error = (
            ("login.locked", {"time": i18n.local_time(attempt.locked_until)})
            if attempt.outcome == "locked"
            else ("login.refused", {})
        )
        return pages.render(request, "webui/login.html", status=401, notice=None, error=error, name=name)

    @app.post("/logout")
    async def logout(request: Request, account_of: CurrentAccount) -> Response:
        await read_form(request)
        session_of(request).log_out()
        return redirect_to(request, "/login", bye="1")

    @app.get("/", response_class=HTMLResponse)
    async def werkbak(request: Request, account: CurrentAccount) -> Response:
        services = services_of(request)
        tenant = services.config.tenant
        tracked = await _hub_transfers(services)
        by_id = {t["transfer_id"]: t for t in tracked or []}
        incoming = []
        for offer in await offers.incoming(store_of(request)):
            hub = by_id.get(offer.transfer_id, {})
            state = hub.get("state") if hub.get("state") in STATES else offer.state
            incoming.append({"offer": offer, "deadline": hub.get("deadline_at"), "state": state})
        members = await bureau.members(services) if tracked else frozenset()
        outgoing = (
            None
            if tracked is None
            else [t for t in tracked if t["offerer"] in members | {tenant} and t["state"] in STATES]
        )
        for_members = [t for t in tracked or [] if t["receiver"] in members and t["state"] in STATES]
        done = request.query_params.get("done")
        done_id = request.query_params.get("id", "")
        notice = (f"done.{done}", done_id) if done in DONE and _TRANSFER_ID.fullmatch(done_id) else None
        return pages.render(
            request,
            "werkbak.html",
            account=account,
            incoming=incoming,
            outgoing=outgoing,
            for_members=for_members,
            tenant=tenant,
            notice=notice,
        )

    @app.get("/offers/{transfer_id}", response_class=HTMLResponse)
    async def dossier_page(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        store = store_of(request)
        try:
            offer = await offers.get(store, _transfer_id(transfer_id))
        except offers.OfferUnknown:  # a member's offer, sealed to the member's keys: say so
            known = await _member_offer(request, transfer_id)
            return pages.render(request, "dossier_sealed.html", account=account, known=known, reasons=REASONS)
        dossier = await offers.dossier(store, transfer_id)
        await processing_log.record(store, account.name, "dossier_viewed", transfer_id)
        log.info("workspace.dossier_viewed", transfer_id=transfer_id, user=account.name)
        return pages.render(request, "dossier.html", offer=offer, d=dossier, reasons=REASONS)

    async def _answer(
        request: Request, account: Account, transfer_id: str, step: str, data: dict[str, Any]
    ) -> Response:
        store = store_of(request)
        services = services_of(request)
        try:
            offer = await offers.get(store, _transfer_id(transfer_id))
        except offers.OfferUnknown:
            return await _answer_for_member(request, account, transfer_id, step, data)
        validate_payload(transfers.PREFIX + step, {"transfer_id": transfer_id, **data})
        connector = connector_of(services)
        if services.hub_api is not None:  # withdrawn or expired meanwhile: nothing to answer
            known = await transfers.TransferStatus(services.hub_api).get(transfer_id)
            if known["state"] != offers.OFFERED:
                raise AlreadyAnswered(str(known["state"]))
        if not await offers.claim(store, transfer_id, step, account.name):
            raise AlreadyAnswered((await offers.get(store, transfer_id)).state)
        try:
            await transfers.send_step(
                connector, step, {"transfer_id": transfer_id, **data}, offer.offerer, transfer_id
            )
        except BaseException:
            await offers.release(store, transfer_id)
            raise
        if step == "accepted":
            await register.enter(store, _pupil_for_register(await offers.dossier(store, transfer_id)))
        await processing_log.record(store, account.name, f"transfer_{step}", transfer_id)
        log.info("workspace.answered", transfer_id=transfer_id, step=step, user=account.name)
        return redirect_to(request, "/", done=step, id=transfer_id)

    async def _member_offer(request: Request, transfer_id: str) -> dict[str, Any]:
        """The hub's record of an offer to a municipality this bureau acts for, or NotFound."""
        services = services_of(request)
        if services.hub_api is None:
            raise NotFound("no such offer")
        known = await transfers.TransferStatus(services.hub_api).get(transfer_id)
        if known["receiver"] not in await bureau.members(services):
            raise NotFound("no such offer")
        return known

    async def _answer_for_member(
        request: Request, account: Account, transfer_id: str, step: str, data: dict[str, Any]
    ) -> Response:
        """A bureau answers an offer to one of its members (it cannot read the dossier)."""
        known = await _member_offer(request, transfer_id)
        if not account.may_act_for_members:
            raise Forbidden
        validate_payload(transfers.PREFIX + step, {"transfer_id": transfer_id, **data})
        if known["state"] != offers.OFFERED:
            raise AlreadyAnswered(str(known["state"]))
        store = store_of(request)
        connector = connector_of(services_of(request))
        if not await bureau.claim_answer(store, transfer_id):
            raise AlreadyAnswered("answered")
        try:
            await transfers.send_step(
                connector, step, {"transfer_id": transfer_id, **data}, known["offerer"], transfer_id
            )
        except BaseException:
            await bureau.release_answer(store, transfer_id)
            raise
        await processing_log.record(store, account.name, f"transfer_{step}", transfer_id)
        log.info(
            "workspace.answered",
            transfer_id=transfer_id,
            step=step,
            user=account.name,
            member=known["receiver"],
        )
        return redirect_to(request, "/", done=f"{step}_for_member", id=transfer_id)

    @app.post("/offers/{transfer_id}/accept")
    async def accept(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        await read_form(request)
        return await _answer(request, account, transfer_id, "accepted", {})

    @app.post("/offers/{transfer_id}/reject")
    async def reject(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        form = await read_form(request)
        reason = form.get("reason", "")
        if reason not in REASONS:
            raise ContractError(f"a reason is one of {', '.join(REASONS)}", field="reason")
        note = form.get("note", "").strip() or None
        return await _answer(request, account, transfer_id, "rejected", {"reason": reason, "note": note})

    async def _close(request: Request, account: Account, transfer_id: str, step: str) -> Response:
        await read_form(request)
        services = services_of(request)
        if services.hub_api is None:
            raise ConnectorError("the workspace has no connection to the hub")
        known = await transfers.TransferStatus(services.hub_api).get(_transfer_id(transfer_id))
        if known["offerer"] != services.config.tenant and not (
            account.may_act_for_members and known["offerer"] in await bureau.members(services)
        ):
            raise Forbidden
        await transfers.send_step(
            connector_of(services), step, {"transfer_id": transfer_id}, known["receiver"], transfer_id
        )
        await processing_log.record(store_of(request), account.name, f"transfer_{step}", transfer_id)
        log.info("workspace.closed", transfer_id=transfer_id, step=step, user=account.name)
        return redirect_to(request, "/", done=step, id=transfer_id)

    @app.post("/outgoing/{transfer_id}/complete")
    async def complete(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        return await _close(request, account, transfer_id, "completed")

    @app.post("/outgoing/{transfer_id}/cancel")
    async def cancel(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        return await _close(request, account, transfer_id, "cancelled")
