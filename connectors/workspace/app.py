"""The workspace's routes. Every page but the login needs a session; opening a dossier and
answering or closing a transfer need a role that may act (`connectors.accounts`). Every view
of a dossier and every answer is written to the processing log with the person's name.

Forms are plain POSTs with a redirect after success (htmx is not needed for them); each carries
the session's CSRF token."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from connectors import accounts, offers, processing_log, register, transfers
from connectors.accounts import Account
from connectors.client import ConnectorError
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.workspace.i18n import CATALOGUE, translate_to
from schemas.errors import ContractError, InbeeldError, NotFound
from schemas.validation import validate_payload
from webui import assets, i18n
from webui.catch_all import CatchAll
from webui.pages import Renderer, base_path
from webui.security import SecurityHeaders
from webui.sessions import SessionMiddleware, check_csrf, session_of

__all__ = ["COOKIE", "create_workspace"]

log = structlog.get_logger("inbeeld.connector.workspace")
COOKIE = "inbeeld_workspace_session"
MAX_FORM = 8192
REASONS = ("not_resident", "unknown_address", "already_registered", "other")
STATES = ("offered", "accepted", "rejected", "completed", "cancelled", "expired")
_TRANSFER_ID = re.compile(r"^[!-~]{1,100}$")
pages = Renderer(Path(__file__).parent / "templates", CATALOGUE)


# Signals of this HTTP edge (like Starlette's HTTPException), not domain errors.
class NotLoggedIn(Exception):
    pass


class CsrfRefused(Exception):
    pass


class Forbidden(Exception):
    pass


class AlreadyAnswered(Exception):
    def __init__(self, state: str) -> None:
        self.state = state


def _services(request: Request) -> ConnectorServices:
    services: ConnectorServices = request.app.state.services
    return services


def _store(request: Request) -> LocalStore:
    store = _services(request).store
    assert store is not None
    return store


async def _account(request: Request) -> Account:
    name = session_of(request).user
    account = await accounts.get(_store(request), name) if name else None
    if account is None:
        raise NotLoggedIn
    return account


async def _actor(account: Annotated[Account, Depends(_account)]) -> Account:
    if not account.may_act:
        raise Forbidden
    return account


CurrentAccount = Annotated[Account, Depends(_account)]
ActingAccount = Annotated[Account, Depends(_actor)]


def _transfer_id(transfer_id: str) -> str:
    if not _TRANSFER_ID.fullmatch(transfer_id):
        raise ContractError("not a transfer id", field="transfer_id")
    return transfer_id


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise ContractError("form too large")
    try:
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=20))
    except ValueError:
        raise ContractError("too many form fields") from None
    if not check_csrf(request, fields):
        raise CsrfRefused
    return fields


def _redirect(request: Request, to: str, **query: str) -> RedirectResponse:
    return RedirectResponse(base_path(request) + to + (f"?{urlencode(query)}" if query else ""), 303)


def create_workspace(
    services: ConnectorServices, *, secret: str | None = None, idle_minutes: int = 30
) -> FastAPI:
    """The workspace over opened services: the store with its keystore (required), the hub API
    and a connected sealing broker client (without them the outgoing list and the answers
    say the hub cannot be reached)."""
    if services.store is None or services.store.keystore is None:
        raise ValueError("the workspace needs the local store with its keystore")
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.services = services

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
    from connectors.workspace.studio import add_studio_routes  # it builds on this module's parts

    add_studio_routes(app)
    return app


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(NotLoggedIn)
    async def _login_first(request: Request, _exc: NotLoggedIn) -> Response:
        return _redirect(request, "/login", **({"expired": "1"} if session_of(request).expired else {}))

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused) -> Response:
        log.warning("workspace.csrf_refused", path=request.url.path)
        return pages.error_page(request, 403, "error.csrf")

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        log.warning("workspace.forbidden", path=request.url.path, user=session_of(request).user)
        return pages.error_page(request, 403, "error.403")

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


def _connector(services: ConnectorServices) -> Any:
    if services.connector is None:
        raise ConnectorError("the workspace has no connection to the broker")
    return services.connector


def _add_routes(app: FastAPI) -> None:
    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        if session_of(request).user is not None:
            return _redirect(request, "/")
        notice = "login.expired" if request.query_params.get("expired") else None
        notice = "login.logged_out" if request.query_params.get("bye") else notice
        return pages.render(request, "webui/login.html", notice=notice, error=None, name="")

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await _form(request)
        name = form.get("name", "").strip()[:100]
        attempt = await accounts.attempt(_store(request), name, form.get("password", ""))
        log.info("workspace.login", user=name if attempt.outcome == "ok" else None, outcome=attempt.outcome)
        if attempt.outcome == "ok":
            session_of(request).log_in(name)
            return _redirect(request, "/")
        error = (
            ("login.locked", {"time": i18n.local_time(attempt.locked_until)})
            if attempt.outcome == "locked"
            else ("login.refused", {})
        )
        return pages.render(request, "webui/login.html", status=401, notice=None, error=error, name=name)

    @app.post("/logout")
    async def logout(request: Request, _account: CurrentAccount) -> Response:
        await _form(request)
        session_of(request).log_out()
        return _redirect(request, "/login", bye="1")

    @app.get("/", response_class=HTMLResponse)
    async def werkbak(request: Request, account: CurrentAccount) -> Response:
        services = _services(request)
        tenant = services.config.tenant
        tracked = await _hub_transfers(services)
        by_id = {t["transfer_id"]: t for t in tracked or []}
        incoming = []
        for offer in await offers.incoming(_store(request)):
            hub = by_id.get(offer.transfer_id, {})
            state = hub.get("state") if hub.get("state") in STATES else offer.state
            incoming.append({"offer": offer, "deadline": hub.get("deadline_at"), "state": state})
        outgoing = (
            None
            if tracked is None
            else [t for t in tracked if t["offerer"] == tenant and t["state"] in STATES]
        )
        done = request.query_params.get("done")
        done_id = request.query_params.get("id", "")
        notice = (
            (f"done.{done}", done_id)
            if done in ("accepted", "rejected", "completed", "cancelled") and _TRANSFER_ID.fullmatch(done_id)
            else None
        )
        return pages.render(
            request, "werkbak.html", account=account, incoming=incoming, outgoing=outgoing, notice=notice
        )

    @app.get("/offers/{transfer_id}", response_class=HTMLResponse)
    async def dossier_page(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        store = _store(request)
        offer = await offers.get(store, _transfer_id(transfer_id))
        dossier = await offers.dossier(store, transfer_id)
        await processing_log.record(store, account.name, "dossier_viewed", transfer_id)
        log.info("workspace.dossier_viewed", transfer_id=transfer_id, user=account.name)
        return pages.render(request, "dossier.html", offer=offer, d=dossier, reasons=REASONS)

    async def _answer(
        request: Request, account: Account, transfer_id: str, step: str, data: dict[str, Any]
    ) -> Response:
        store = _store(request)
        services = _services(request)
        offer = await offers.get(store, _transfer_id(transfer_id))
        validate_payload(transfers.PREFIX + step, {"transfer_id": transfer_id, **data})
        connector = _connector(services)
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
        return _redirect(request, "/", done=step, id=transfer_id)

    @app.post("/offers/{transfer_id}/accept")
    async def accept(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        await _form(request)
        return await _answer(request, account, transfer_id, "accepted", {})

    @app.post("/offers/{transfer_id}/reject")
    async def reject(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        form = await _form(request)
        reason = form.get("reason", "")
        if reason not in REASONS:
            raise ContractError(f"a reason is one of {', '.join(REASONS)}", field="reason")
        note = form.get("note", "").strip() or None
        return await _answer(request, account, transfer_id, "rejected", {"reason": reason, "note": note})

    async def _close(request: Request, account: Account, transfer_id: str, step: str) -> Response:
        await _form(request)
        services = _services(request)
        if services.hub_api is None:
            raise ConnectorError("the workspace has no connection to the hub")
        known = await transfers.TransferStatus(services.hub_api).get(_transfer_id(transfer_id))
        if known["offerer"] != services.config.tenant:
            raise Forbidden
        await transfers.send_step(
            _connector(services), step, {"transfer_id": transfer_id}, known["receiver"], transfer_id
        )
        await processing_log.record(_store(request), account.name, f"transfer_{step}", transfer_id)
        log.info("workspace.closed", transfer_id=transfer_id, step=step, user=account.name)
        return _redirect(request, "/", done=step, id=transfer_id)

    @app.post("/outgoing/{transfer_id}/complete")
    async def complete(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        return await _close(request, account, transfer_id, "completed")

    @app.post("/outgoing/{transfer_id}/cancel")
    async def cancel(request: Request, transfer_id: str, account: ActingAccount) -> Response:
        return await _close(request, account, transfer_id, "cancelled")
