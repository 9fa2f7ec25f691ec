"""A pupil's access report (AVG article 15) in the workspace: `/register/{id}/report` as a page,
`/register/{id}/report.pdf` as a PDF, reached from the pupil's row in the register.

What it lists comes from `connectors.access_report` (the connector's processing log, found by
the pupil's keyed index). Like a dossier, it needs a role that may act (`ACTING_ROLES`); every
view and every download is itself written to the processing log, with the person's name,
under the access-request processing activity and about the pupil."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from connectors import access_report, processing_log, register
from connectors.access_report import Activity, Step
from connectors.letters.errors import UnprintableCharacter
from connectors.workspace import edge as ws
from connectors.workspace.i18n import CATALOGUE
from connectors.workspace.report_pdf import PrintedReport, report_pdf
from schemas.errors import NotFound
from schemas.processing_log import processing_activity_id
from webui import i18n
from webui.i18n import Translate

__all__ = ["ACCESS_ACTIVITY", "add_report_routes"]

log = structlog.get_logger("inbeeld.connector.workspace")
# Answering a data subject's access request is a processing activity of its own.
ACCESS_ACTIVITY = processing_activity_id("nl.leerplicht.access")
_PUPIL_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_COLUMNS = ("when", "step", "with", "categories", "basis", "activity")


def _when(at: float) -> str:
    return i18n.local_time(datetime.fromtimestamp(at, UTC))


def _label(t: Translate, key: str, fallback: str) -> str:
    return t(key) if key in CATALOGUE[i18n.DEFAULT] else fallback


def _letter(t: Translate, step: Step) -> tuple[str, str]:
    """A rendered letter's step and addressee, in words: its template, version and languages
    (the record's attributes), and the kind of addressee it was written to."""
    d = step.details
    what = _label(t, "report.step." + step.step, step.step)
    what += (
        " ("
        + t(
            "report.letter",
            template=d.get("template", "?"),
            version=d.get("version", "?"),
            languages=d.get("languages", "?"),
        )
        + ")"
    )
    if step.failed:
        what += f" ({t('report.failed')})"
    addressee = d.get("addressee")
    if not addressee:
        return what, t("report.addressee.none")
    return what, _label(t, f"report.addressee.{addressee}", addressee)


def describe(t: Translate, step: Step) -> dict[str, str]:
    """One step in words, per column (`_COLUMNS`)."""
    direction = t("report.sent") if step.sent else t("report.received")
    if step.failed:
        direction += ", " + t("report.failed")
    what = f"{_label(t, 'report.step.' + step.step, step.step)} ({direction})"
    if step.about:
        what += f" · {step.about}"
    counterpart = step.counterpart
    if step.flow == "letter":
        what, other = _letter(t, step)
    elif counterpart is None:
        other = t("report.hub")
    elif counterpart.startswith("group:"):
        other = t("report.group", name=counterpart.removeprefix("group:"))
    else:
        other = counterpart
    basis = step.legal_basis or t("report.basis_none")
    if step.legal_basis and step.legal_basis_code:
        basis += f" ({step.legal_basis_code})"
    activity = (
        f"{step.activity_name} ({step.activity_id})"
        if step.activity_name
        else f"{step.activity_id} ({t('report.unregistered')})"
    )
    categories = ", ".join(_label(t, f"report.cat.{c}", c) for c in step.categories) or "-"
    return {
        "when": _when(step.at),
        "step": what,
        "with": other,
        "categories": categories,
        "basis": basis,
        "activity": activity,
    }


def _name(pupil: dict[str, Any]) -> str:
    parts = (pupil.get("given_names"), pupil.get("family_name_prefix"), pupil.get("family_name"))
    return " ".join(p for p in parts if p)


def _activities(request: Request) -> dict[str, Activity]:
    configured = ws.services_of(request).config.processing_activities
    return {flow: Activity(a.id, a.name, a.legal_basis) for flow, a in configured.items()}


async def _report(request: Request, pupil_id: str, user: str, what: str) -> tuple[dict[str, Any], list[Step]]:
    """The pupil and the steps about him; the view or download written to the processing log."""
    store = ws.store_of(request)
    pupil = await register.get(store, pupil_id) if _PUPIL_ID.fullmatch(pupil_id) else None
    if pupil is None:
        raise NotFound("no such pupil in the register")
    steps = await access_report.steps_about(store, pupil["bsn"], _activities(request))
    await processing_log.record(
        store, user, what, pupil_id, activity_id=ACCESS_ACTIVITY, data_subject=pupil["bsn"]
    )
    log.info(f"workspace.{what}", user=user, pupil_ref=pupil_id, steps=len(steps))
    return pupil, steps


def add_report_routes(app: FastAPI) -> None:
    @app.get("/register/{pupil_id}/report", response_class=HTMLResponse)
    async def report_page(request: Request, pupil_id: str, account: ws.ActingAccount) -> Response:
        pupil, steps = await _report(request, pupil_id, account.name, "access_report_viewed")
        t = i18n.translator(CATALOGUE, i18n.choose(request))
        return ws.pages.render(
            request,
            "report.html",
            account=account,
            pupil=pupil,
            name=_name(pupil),
            steps=[describe(t, s) for s in steps],
            made=_when(time.time()),
            tenant=ws.services_of(request).config.tenant,
        )

    @app.get("/register/{pupil_id}/report.pdf")
    async def report_download(request: Request, pupil_id: str, account: ws.ActingAccount) -> Response:
        pupil, steps = await _report(request, pupil_id, account.name, "access_report_downloaded")
        lang = i18n.choose(request)
        t = i18n.translator(CATALOGUE, lang)
        name = _name(pupil)
        printed = PrintedReport(
            lang=lang,
            ref=f"{t('report.title')} · {date.today().isoformat()}",
            title=t("report.title"),
            heading=t("report.heading", name=name),
            lines=(
                f"{t('report.pupil')}: {name}",
                f"{t('dossier.birth_date')}: {pupil['birth_date']}",
                f"{t('dossier.bsn')}: {pupil['bsn']}",
                t(
                    "report.made",
                    time=_when(time.time()),
                    name=account.name,
                    tenant=ws.services_of(request).config.tenant,
                ),
            ),
            intro=t("report.intro"),
            steps_title=t("report.steps"),
            labels=[t(f"report.col.{c}") for c in _COLUMNS],
            steps=[[d[c] for c in _COLUMNS] for d in (describe(t, s) for s in steps)],
            none=t("report.none"),
        )
        try:
            body = report_pdf(printed)
        except UnprintableCharacter as exc:
            return ws.pages.error_page(request, 422, "report.unprintable", message=exc.message)
        # The file's name says what it is, never whom it is about.
        filename = f"inzageoverzicht-{date.today().isoformat()}.pdf"
        return Response(
            body,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )
