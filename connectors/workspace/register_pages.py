"""The workspace's register page (`/register`): search the local pupil register, import a CSV,
shred the register.

The search runs here, in the connector's own store (`connectors.register.search`), and is a
POST, so a BSN never stands in an address (history, a proxy's log). Every pupil a result list
shows is written to the processing log with the person's name, one record per pupil, its
subject the register row id (never the BSN).

The import goes through `connectors.register.import_data`, the code of `inbeeld-connector
register import`, and so does what the command does: every good row is imported (a row is
written whole or not at all), every bad row is reported on the page with its line, column
and why, never echoing the value. A file over `SYNC_IMPORT` bytes is imported in the
background (`ImportJob`, kept in the app's memory): its page shows a progress bar, polled with
htmx, until the report. Shredding is the command's `register shred`: the whole
register, after a confirmation step. Importing and shredding need a role that may act
(`accounts.ACTING_ROLES`); a viewer may search."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from connectors import processing_log, register
from connectors.accounts import Account
from connectors.store import LocalStore
from connectors.workspace import edge as ws
from schemas.errors import ContractError, NotFound
from schemas.processing_log import processing_activity_id
from webui.sessions import check_csrf

__all__ = ["MAX_UPLOAD", "add_register_routes", "multipart_form"]

log = structlog.get_logger("inbeeld.connector.workspace")
MAX_UPLOAD = 50 * 1024 * 1024  # a register of a large municipality, as CSV
MAX_QUERY = 200
SYNC_IMPORT = 256 * 1024  # a larger file is imported in the background, with a progress bar
MAX_RESULTS = 50  # a search that finds more shows these and asks for a narrower one
# Looking pupils up in the own register serves the register's processing activity.
REGISTER_ACTIVITY = processing_activity_id("nl.leerplicht.register")


async def multipart_form(
    request: Request, limit: int = MAX_UPLOAD
) -> tuple[dict[str, str], dict[str, bytes]]:
    """The fields and files of a `multipart/form-data` POST (its CSRF token checked): parsed
    with the standard library's MIME parser, the body bounded by `limit` bytes."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data") or "boundary=" not in kind:
        raise ContractError("send the form as multipart/form-data")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise ContractError("the file is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ContractError("the file is too large")
    head = f"Content-Type: {kind}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1", "replace")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + bytes(body))
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    if not message.is_multipart():
        raise ContractError("the form cannot be read")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or len(fields) + len(files) >= 20:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_param("filename", header="content-disposition") is not None:
            files[name] = data
        else:
            fields[name] = data.decode("utf-8", "replace")
    if not check_csrf(request, fields):
        raise ws.CsrfRefused
    return fields, files


async def _logged_view(request: Request, user: str, records: list[dict[str, Any]], activity: str) -> None:
    store = ws.store_of(request)
    for record in records:
        await processing_log.record(store, user, activity, record["id"], activity_id=REGISTER_ACTIVITY)


async def _import(
    store: LocalStore, user: str, raw: bytes, progress: Callable[[int, int], None] | None = None
) -> register.ImportReport:
    """`register import` of an uploaded file, written to the processing log and the log."""
    report = await register.import_data(store, raw, progress=progress)
    await processing_log.record(
        store,
        user,
        "register_imported",
        f"{report.imported} new, {report.replaced} replaced, {len(report.errors)} refused",
        "ok" if report.ok else "error",
        activity_id=REGISTER_ACTIVITY,
    )
    log.info(
        "workspace.register_imported",
        user=user,
        imported=report.imported,
        replaced=report.replaced,
        refused=len(report.errors),
    )
    return report


@dataclass
class ImportJob:
    """An import running in the background: how far it is, and its report once done."""

    id: str
    user: str
    done: int = 0
    total: int = 0
    report: register.ImportReport | None = None
    failed: bool = False
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        return self.report is not None or self.failed

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, max(total, done)

    async def run(self, store: LocalStore, raw: bytes) -> None:
        try:
            self.report = await _import(store, self.user, raw, self.progress)
        except Exception as exc:  # the page says so; the log says why
            self.failed = True
            log.error("workspace.register_import_failed", user=self.user, error=type(exc).__name__)


def add_register_routes(app: FastAPI) -> None:
    app.state.register_imports = {}  # ImportJob by id, the last ones kept

    async def _page(
        request: Request,
        account: Account,
        *,
        status: int = 200,
        query: str = "",
        kind: str | None = None,
        results: list[dict[str, Any]] | None = None,
        report: register.ImportReport | None = None,
        notice: str | None = None,
        more: bool = False,
        job: ImportJob | None = None,
    ) -> Response:
        size = await register.count(ws.store_of(request))
        return ws.pages.render(
            request,
            "register.html",
            status=status,
            account=account,
            size=size,
            query=query,
            kind=kind,
            results=results,
            report=report,
            notice=notice,
            more=more,
            max_results=MAX_RESULTS,
            job=job,
        )

    @app.get("/register", response_class=HTMLResponse)
    async def register_page(request: Request, account: ws.CurrentAccount) -> Response:
        done = request.query_params.get("done")
        shredded = request.query_params.get("n", "")
        notice = shredded if done == "shredded" and shredded.isdigit() else None
        return await _page(request, account, notice=notice)

    @app.post("/register/search", response_class=HTMLResponse)
    async def register_search(request: Request, account: ws.CurrentAccount) -> Response:
        form = await ws.read_form(request)
        query = " ".join(form.get("q", "").split())[:MAX_QUERY]
        kind, results = await register.search(ws.store_of(request), query, limit=MAX_RESULTS + 1)
        more = len(results) > MAX_RESULTS
        results = results[:MAX_RESULTS]
        await _logged_view(request, account.name, results, "register_viewed")
        log.info("workspace.register_searched", user=account.name, kind=kind, results=len(results))
        return await _page(request, account, query=query, kind=kind, results=results, more=more)

    @app.post("/register/import", response_class=HTMLResponse)
    async def register_import(request: Request, account: ws.ActingAccount) -> Response:
        _fields, files = await multipart_form(request)
        raw = files.get("file")
        if not raw:
            report = register.ImportReport(errors=[register.RowError(0, "(file)", "choose a CSV file")])
            return await _page(request, account, status=400, report=report)
        store = ws.store_of(request)
        if len(raw) <= SYNC_IMPORT:
            report = await _import(store, account.name, raw)
            return await _page(request, account, status=200 if report.ok else 422, report=report)
        # A large file: imported in the background; its page shows a progress bar meanwhile.
        jobs: dict[str, ImportJob] = request.app.state.register_imports
        for old in [k for k, j in jobs.items() if j.finished][: max(0, len(jobs) - 20)]:
            del jobs[old]
        job = ImportJob(secrets.token_urlsafe(12), account.name)
        job.task = asyncio.create_task(job.run(store, raw))
        jobs[job.id] = job
        return ws.redirect_to(request, f"/register/import/{job.id}")

    @app.get("/register/import/{job_id}", response_class=HTMLResponse)
    async def import_progress(request: Request, job_id: str, account: ws.ActingAccount) -> Response:
        jobs: dict[str, ImportJob] = request.app.state.register_imports
        job = jobs.get(job_id)
        if job is None or job.user != account.name:
            raise NotFound("no such import")
        status = 200 if job.report is None or job.report.ok else 422
        return await _page(request, account, status=status, report=job.report, job=job)

    @app.get("/register/shred", response_class=HTMLResponse)
    async def shred_page(request: Request, account: ws.ActingAccount) -> Response:
        size = await register.count(ws.store_of(request))
        return ws.pages.render(request, "register_shred.html", account=account, size=size, error=False)

    @app.post("/register/shred", response_class=HTMLResponse)
    async def register_shred(request: Request, account: ws.ActingAccount) -> Response:
        form = await ws.read_form(request)
        store = ws.store_of(request)
        if form.get("confirm") != "yes":  # the confirmation step was not taken: nothing done
            size = await register.count(store)
            return ws.pages.render(
                request, "register_shred.html", status=400, account=account, size=size, error=True
            )
        n = await register.shred(store)
        await processing_log.record(
            store, account.name, "register_shredded", f"{n} records", activity_id=REGISTER_ACTIVITY
        )
        log.warning("workspace.register_shredded", user=account.name, records=n)
        return ws.redirect_to(request, "/register", done="shredded", n=str(n))
