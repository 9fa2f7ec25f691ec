"""The hub operator's console at /console: log in, the overview, the dead letters (list, detail,
replay) and the tenants. Pages are read with GET and work without JavaScript; every change is a
POST form with the session's CSRF token, carried out through hub.operator_actions (so it is in
the audit chain under the operator's name, `operator:web:<name>`), exactly as the API does it."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import parse_qsl, urlencode

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from hub import audit, health, inboxes, ledger, operator_actions, registry, tenant_activity
from hub.audit import ChainsReport
from hub.config import Settings
from hub.errors import ServiceUnavailable, Transient
from hub.operator_actions import Actor
from hub.registry import TENANT_CODE_PATTERN
from hub.services import management
from hub.store.db import Database
from hub.store.models import DeadLetter, utcnow
from hub.web import activity, alerts_page, assets, i18n, memberships, pages
from schemas.errors import ContractError, InbeeldError, NotFound
from webui.catch_all import CatchAll
from webui.security import SecurityHeaders
from webui.sessions import SessionMiddleware, check_csrf, session_of

log = structlog.get_logger("inbeeld.console")
MAX_SELECTED = 200  # dead letters replayed at once (the list shows at most this many)
MAX_FORM = 16 * 1024  # a list's worth of ids, twice (ticked and shown)
CHAIN_MAX_AGE = timedelta(minutes=5)
_REASON = re.compile(r"^[a-z_]{1,32}$")
_TENANT = re.compile(TENANT_CODE_PATTERN)
_ACTIVITY = re.compile(r"^[a-z0-9 ._-]{1,64}$")
_SUBJECT = re.compile(r"^[!-~]{1,100}$")  # printable ASCII, no spaces: an id or a reference


# Two signals of this HTTP edge, like Starlette's HTTPException (not domain errors, so outside
# the tree in schemas/errors.py); bad input is a ContractError, shown with its message.


class NotLoggedIn(Exception):
    """A page for operators asked without a (live) session: to the login page."""


class CsrfRefused(Exception):
    """A form without this session's CSRF token."""


@dataclass
class ChainCheck:
    report: ChainsReport
    at: datetime


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _operator(request: Request) -> str:
    session = session_of(request)
    if session.user is None:
        raise NotLoggedIn
    return session.user


OperatorName = Annotated[str, Depends(_operator)]


async def _form_fields(request: Request) -> list[tuple[str, str]]:
    """A urlencoded form's fields in order, bounded, with its CSRF token checked."""
    body = await request.body()
    if len(body) > MAX_FORM:
        raise ContractError("form too large")
    try:
        fields = parse_qsl(body.decode("utf-8", "replace"), max_num_fields=MAX_SELECTED + 10)
    except ValueError:
        raise ContractError("too many form fields") from None
    if not check_csrf(request, dict(fields)):
        raise CsrfRefused
    return fields


async def _form(request: Request) -> dict[str, str]:
    return dict(await _form_fields(request))


def _redirect(request: Request, to: str, **query: str) -> RedirectResponse:
    url = pages.base_path(request) + to + (f"?{urlencode(query)}" if query else "")
    return RedirectResponse(url, status_code=303)


def create_console(settings: Settings, db: Database, path: str = "/console") -> FastAPI:
    """The console as an app of its own, to be mounted at `path` (its cookie is scoped to it)."""
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.settings = settings
    console.state.db = db
    console.state.chain = None

    async def too_long(scope: Scope, receive: Receive, send: Send) -> None:
        lang = i18n.translator(i18n.DEFAULT)
        await HTMLResponse(f"<!doctype html><title>414</title><p>{lang('error.414')}</p>", 414)(
            scope, receive, send
        )

    # Outermost last: the headers wrap everything, the session is there for every route, and a
    # bug becomes the error page inside both (Starlette's own 500 would come outside them).
    console.add_middleware(
        CatchAll, error_page=lambda request: pages.error_page(request, 500, "error.500"), event="console.bug"
    )
    console.add_middleware(
        SessionMiddleware,
        secret=settings.console_secret or secrets.token_urlsafe(32),
        idle=settings.console_idle_minutes * 60,
        path=path,
    )
    console.add_middleware(SecurityHeaders, too_long=too_long)
    console.mount("/static", assets.static_files(), name="static")
    _install_errors(console)
    _add_routes(console)
    alerts_page.add_routes(console, _operator)
    return console


def _install_errors(console: FastAPI) -> None:
    @console.exception_handler(NotLoggedIn)
    async def _login_first(request: Request, _exc: NotLoggedIn) -> Response:
        expired = session_of(request).expired
        query = {"expired": "1"} if expired else {}
        if request.headers.get("hx-request"):  # htmx polling: have the whole page go to the login
            url = pages.base_path(request) + "/login" + (f"?{urlencode(query)}" if query else "")
            return Response(status_code=200, headers={"HX-Redirect": url})
        return _redirect(request, "/login", **query)

    @console.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused) -> Response:
        log.warning("console.csrf_refused", path=request.url.path)
        return pages.error_page(request, 403, "error.csrf")

    @console.exception_handler(RequestValidationError)
    async def _invalid(request: Request, _exc: RequestValidationError) -> Response:
        return pages.error_page(request, 400, "error.400", message="invalid parameter")

    @console.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        status = exc.status_code if exc.status_code in (403, 404, 405, 413, 414) else 400
        key = f"error.{status}"
        return pages.error_page(request, status, key, message=str(exc.detail))

    @console.exception_handler(ServiceUnavailable)
    @console.exception_handler(Transient)
    async def _unavailable(request: Request, _exc: InbeeldError) -> Response:
        return pages.error_page(request, 503, "error.503")

    @console.exception_handler(NotFound)
    async def _not_found(request: Request, _exc: NotFound) -> Response:
        return pages.error_page(request, 404, "error.404")

    @console.exception_handler(InbeeldError)
    async def _refused(request: Request, exc: InbeeldError) -> Response:
        return pages.error_page(request, 400, "error.400", message=exc.message)


def _add_routes(console: FastAPI) -> None:
    activity.add_routes(console, _operator)
    memberships.add_routes(console, _operator, _form)

    @console.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> Response:
        if session_of(request).user is not None:
            return _redirect(request, "/")
        notice = None
        if request.query_params.get("expired"):
            notice = "login.expired"
        elif request.query_params.get("bye"):
            notice = "login.logged_out"
        return pages.render(request, "webui/login.html", notice=notice, error=None, name="")

    @console.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await _form(request)
        name = form.get("name", "").strip()[:100]
        async with _db(request).session() as s, s.begin():
            attempt = await operator_actions.log_in(s, name, form.get("password", ""))
        if attempt.outcome == "ok":
            session_of(request).log_in(name)
            return _redirect(request, "/")
        error = (
            ("login.locked", {"time": i18n.local_time(attempt.locked_until)})
            if attempt.outcome == "locked"
            else ("login.refused", {})
        )
        return pages.render(request, "webui/login.html", status=401, notice=None, error=error, name=name)

    @console.post("/logout")
    async def logout(request: Request, name: OperatorName) -> Response:
        await _form(request)
        async with _db(request).session() as s, s.begin():
            await operator_actions.log_out(s, Actor.web(name))
        session_of(request).log_out()
        return _redirect(request, "/login", bye="1")

    @console.get("/", response_class=HTMLResponse)
    async def overview(request: Request, _name: OperatorName) -> Response:
        return pages.render(
            request, "overview.html", stats=await _stats(request), activity=await activity.activity(request)
        )

    @console.get("/overview/stats", response_class=HTMLResponse)
    async def overview_stats(request: Request, _name: OperatorName) -> Response:
        """The part of the overview htmx polls."""
        return pages.render(request, "overview_stats.html", stats=await _stats(request))

    @console.get("/dead-letters", response_class=HTMLResponse)
    async def dead_letters(request: Request, _name: OperatorName) -> Response:
        reason = request.query_params.get("reason", "").strip()
        tenant = request.query_params.get("tenant", "").strip()
        if reason and not _REASON.fullmatch(reason):
            raise ContractError("reason: lowercase letters and '_', at most 32")
        if tenant and not _TENANT.fullmatch(tenant):
            raise ContractError("tenant: a tenant code")
        since = request.query_params.get("since", "").strip()
        try:
            start = i18n.local_day_start(since) if since else None
        except ValueError:
            raise ContractError("since: a date, YYYY-MM-DD") from None
        async with _db(request).session() as s:
            rows = await ledger.dead_letters(s, tenant or None, reason or None, limit=200, since=start)
        return pages.render(
            request, "dead_letters.html", rows=rows, reason=reason, tenant=tenant, since=since
        )

    @console.get("/dead-letters/{dl_id}", response_class=HTMLResponse)
    async def dead_letter(request: Request, dl_id: str, _name: OperatorName) -> Response:
        row = await _dead_letter(request, dl_id)
        done = request.query_params.get("replayed") == "1"
        discarded = request.query_params.get("discarded") == "1"
        return pages.render(request, "dead_letter.html", row=row, done=done, failed=None, discarded=discarded)

    @console.post("/dead-letters/replay", response_class=HTMLResponse)
    async def replay_selected(request: Request, name: OperatorName) -> Response:
        """Replay the dead letters ticked in the list (or, with `all`, every one the filtered list
        showed that is not replayed yet), one by one, each as a single replay is."""
        fields = await _form_fields(request)
        wanted = "shown" if ("all", "yes") in fields else "id"
        ids = [v for k, v in fields if k == wanted]
        if not ids:
            raise ContractError("no dead letter selected")
        results: list[tuple[str, str | None]] = []  # id, None when replayed or why not
        for dl_id in dict.fromkeys(ids):
            try:
                row = await _dead_letter(request, dl_id)
                await operator_actions.replay(_settings(request), _db(request), Actor.web(name), row.id)
            except InbeeldError as exc:
                results.append((dl_id[:12], exc.message))
            else:
                results.append((dl_id, None))
        return pages.render(request, "replayed.html", results=results)

    @console.post("/dead-letters/{dl_id}/replay", response_class=HTMLResponse)
    async def replay(request: Request, dl_id: str, name: OperatorName) -> Response:
        await _form(request)
        row = await _dead_letter(request, dl_id)
        try:
            await operator_actions.replay(_settings(request), _db(request), Actor.web(name), row.id)
        except InbeeldError as exc:
            log.info("console.replay_refused", dead_letter=row.id, reason=exc.reason)
            return pages.render(
                request, "dead_letter.html", status=409, row=row, done=False, failed=exc.message
            )
        return _redirect(request, f"/dead-letters/{row.id}", replayed="1")

    @console.post("/dead-letters/{dl_id}/discard", response_class=HTMLResponse)
    async def discard(request: Request, dl_id: str, name: OperatorName) -> Response:
        form = await _form(request)
        row = await _dead_letter(request, dl_id)
        reason = " ".join(form.get("reason", "").split())
        try:
            if not 3 <= len(reason) <= 200:
                raise ContractError("the reason is 3 to 200 characters", field="reason")
            async with _db(request).session() as s, s.begin():
                await operator_actions.discard(s, Actor.web(name), row.id, reason)
        except InbeeldError as exc:
            if isinstance(exc, Transient):
                raise
            log.info("console.discard_refused", dead_letter=row.id, reason=exc.reason)
            status = 409 if exc.reason == "discard_refused" else 422
            return pages.render(
                request,
                "dead_letter.html",
                status=status,
                row=row,
                done=False,
                failed=None,
                discard_failed=exc.message,
            )
        return _redirect(request, f"/dead-letters/{row.id}", discarded="1")

    @console.get("/audit", response_class=HTMLResponse)
    async def audit_records(request: Request, _name: OperatorName) -> Response:
        query = {k: request.query_params.get(k, "").strip() for k in ("tenant", "activity", "subject")}
        for key, pattern in (("tenant", _TENANT), ("activity", _ACTIVITY), ("subject", _SUBJECT)):
            if query[key] and not pattern.fullmatch(query[key]):
                raise ContractError(f"{key}: not a valid value")
        async with _db(request).session() as s:
            rows = await audit.search(
                s,
                query["tenant"] or None,
                activity=query["activity"] or None,
                subject_ref=query["subject"] or None,
                limit=200,
            )
        chain: ChainCheck | None = request.app.state.chain
        return pages.render(request, "audit.html", rows=rows, query=query, chain=chain)

    @console.post("/audit/verify", response_class=HTMLResponse)
    async def verify_chain(request: Request, name: OperatorName) -> Response:
        await _form(request)
        async with _db(request).session() as s, s.begin():
            report = await operator_actions.verify_chain(s, Actor.web(name))
        request.app.state.chain = ChainCheck(report, utcnow())
        return _redirect(request, "/audit", verified="1")

    @console.post("/tenants/{code}/{action}", response_class=HTMLResponse)
    async def tenant_state(request: Request, code: str, action: str, name: OperatorName) -> Response:
        """Suspend or reinstate a tenant, create an API token for it, or renew its broker
        password - through the same operator actions as the API and CLI."""
        form = await _form(request)
        if action not in ("suspend", "reinstate", "token", "password") or not _TENANT.fullmatch(code):
            raise NotFound("no such tenant action")
        if action in ("token", "password"):
            return await _secret_for(request, code, action, form.get("confirm") == "yes", name)
        if action == "suspend" and form.get("confirm") != "yes":  # it cuts a tenant off: ask first
            async with _db(request).session() as s:
                tenant = await registry.get_tenant(s, code)
            return pages.render(request, "confirm_suspend.html", tenant=tenant)
        settings = _settings(request)
        async with management(settings) as mgmt, _db(request).session() as s, s.begin():
            if action == "suspend":
                await operator_actions.suspend_tenant(s, mgmt, settings, Actor.web(name), code)
            else:
                await operator_actions.reinstate_tenant(s, mgmt, settings, Actor.web(name), code)
        return _redirect(request, "/tenants", done=action, tenant=code)

    @console.get("/tenants", response_class=HTMLResponse)
    async def tenants(request: Request, _name: OperatorName) -> Response:
        async with _db(request).session() as s:
            rows = await registry.list_tenants(s)
            groups = await memberships.context(s, request)
        settings = _settings(request)
        try:
            async with management(settings) as mgmt:
                queues = await inboxes.stats(mgmt, settings.vhost)
        except InbeeldError as exc:  # the list stands without the broker's figures
            log.warning("console.inbox_stats_unavailable", reason=exc.reason)
            queues = None
        stats = {t.code: queues.get(t.inbox) if queues and t.inbox else None for t in rows}
        async with _db(request).session() as s:
            activity = await tenant_activity.for_tenants(
                s, [t.code for t in rows], {code: q.messages if q else None for code, q in stats.items()}
            )
        done = request.query_params.get("done")
        subject = request.query_params.get("tenant", "")
        valid = done in ("suspend", "reinstate") and _TENANT.fullmatch(subject)
        notice = (f"tenants.{done}_done", subject) if valid else None
        return pages.render(
            request,
            "tenants.html",
            rows=rows,
            stats=stats,
            activity=activity,
            broker_known=queues is not None,
            notice=notice,
            **groups,
        )


async def _secret_for(request: Request, code: str, action: str, confirmed: bool, name: str) -> Response:
    """A new API token for tenant `code`, or its broker password renewed (after a confirmation:
    it cuts the connector off); the secret is shown once on the page and stored hashed, or
    not at all."""
    async with _db(request).session() as s:
        tenant = await registry.get_tenant(s, code)  # NotFound for an unknown code
    if action == "password" and not confirmed:
        return pages.render(request, "confirm_password.html", tenant=tenant)
    settings = _settings(request)
    if action == "token":
        async with _db(request).session() as s, s.begin():
            token_id, token = await operator_actions.create_token(
                s, Actor.web(name), "tenant", code, label=f"console:{name}"
            )
        label = ("secret.token", {"id": token_id, "code": code})
        return pages.render(request, "secret.html", label=label, secret=token, closed=None)
    async with management(settings) as mgmt, _db(request).session() as s, s.begin():
        creds, closed = await operator_actions.rotate_broker_password(
            s, mgmt, settings, Actor.web(name), tenant.code, close_connections=True
        )
    label = ("secret.password", {"code": code, "user": creds.username})
    return pages.render(request, "secret.html", label=label, secret=creds.password, closed=closed)


async def _dead_letter(request: Request, dl_id: str) -> DeadLetter:
    if not dl_id.isdigit() or len(dl_id) > 10 or int(dl_id) > 2**31 - 1:
        raise NotFound(f"no dead letter {dl_id[:20]}")
    async with _db(request).session() as s:
        row = await s.get(DeadLetter, int(dl_id))
    if row is None:
        raise NotFound(f"no dead letter {dl_id}")
    return row


@dataclass(frozen=True)
class Stats:
    dead_letters_waiting: int
    tenants: int
    last_hour: dict[str, int]
    last_day: dict[str, int]
    rejected_today: dict[str, int]  # per reason, the last 24 hours
    health: dict[str, str]  # database, broker: `ok` or the trouble
    chain: ChainCheck
    at: datetime


async def _stats(request: Request) -> Stats:
    now = utcnow()
    async with _db(request).session() as s:
        waiting = await ledger.dead_letters_waiting(s)
        tenants = len(await registry.list_tenants(s))
        last_hour = await ledger.counts(s, since=now - timedelta(hours=1))
        last_day = await ledger.counts(s, since=now - timedelta(days=1))
        rejected = await ledger.rejected_by_reason(s, now - timedelta(days=1))
        chain: ChainCheck | None = request.app.state.chain
        if chain is None or now - chain.at > CHAIN_MAX_AGE:
            chain = ChainCheck(await audit.verify(s), now)
            request.app.state.chain = chain
    checks = await health.check(_db(request), _settings(request))
    return Stats(waiting, tenants, last_hour, last_day, rejected, checks, chain, now)
