"""The workspace's offer form (`/outgoing/new`): an officer offers a pupil of the local register
to another tenant, as `inbeeld-connector transfer offer` does.

The pupil, the previous address and the school come from the register record; the form adds
the receiving tenant (chosen from the hub's directory: the members of the groups this tenant
sees), the new address if known, the moving date, a parent or guardian, the
compulsory-education status and a note; the legal basis is the transfer processing activity's
in the municipality's register (`[processing_activities.transfer]`: `legal_basis` and
`legal_basis_code`), shown on the form and named in the dossier. The dossier is validated
against the contract before anything is sent; a receiver the directory does not know, or that
has no keys to seal to, is refused on the page. Each form carries a one-time form id: a second
submit of the same form sends nothing again and says which transfer the first one offered.

After sending, the page waits a few seconds for the hub's verdict (`connectors.verdict`): a
refusal is shown on the form (the offer was not routed); routed or still undecided, the
werkbak lists the offer under outgoing. The view of the pupil (opening the form) and the
offer are written to the processing log with the person's name; the log never names the
pupil."""

from __future__ import annotations

import re
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from connectors import processing_log, register, transfers
from connectors.accounts import Account
from connectors.client import ConnectorError
from connectors.config import ConnectorConfig
from connectors.directory import Directory
from connectors.verdict import await_verdict
from connectors.workspace import edge as ws
from connectors.workspace import form_once
from schemas.errors import InbeeldError, NotFound, SchemaInvalid

__all__ = ["add_offer_routes"]

log = structlog.get_logger("inbeeld.connector.workspace")
VERDICT_WAIT = 10.0  # seconds the page waits for the hub to route or refuse the offer
STATUSES = ("leerplichtig", "kwalificatieplichtig", "vrijstelling")
EXEMPTIONS = (
    "physical_or_mental",
    "objection_to_denomination",
    "school_abroad",
    "alternative_programme",
    "other",
)
RELATIONS = ("parent", "guardian", "foster_parent", "other")
LANGUAGES = ("nl", "en", "pl", "tr", "ar", "bg")
FIELDS = (
    "to",
    "moved_on",
    "street",
    "house_number",
    "house_letter",
    "postcode",
    "city",
    "guardian_given_names",
    "guardian_family_name",
    "guardian_relation",
    "guardian_phone",
    "guardian_email",
    "guardian_language",
    "status",
    "exemption_reason",
    "notes",
    "form_id",
)
_PUPIL_ID = re.compile(r"^[0-9a-f-]{36}$")
_TENANT = re.compile(r"^[A-Za-z0-9-]{1,32}$")


def _directory(request: Request) -> Directory:
    services = ws.services_of(request)
    if services.connector is None or services.sealer is None or services.directory is None:
        raise ConnectorError("the workspace has no connection to the hub and the broker")
    return services.directory


async def _receivers(request: Request) -> list[str]:
    """The tenants this one can offer to: every member of the groups the hub shows it."""
    groups = await _directory(request).groups(refresh=True)
    me = ws.services_of(request).config.tenant
    return sorted({code for members in groups.values() for code in members if code != me})


async def _pupil(request: Request, pupil_id: str) -> dict[str, Any]:
    if not _PUPIL_ID.fullmatch(pupil_id):
        raise NotFound("no such pupil in the register")
    found = await register.get(ws.store_of(request), pupil_id)
    if found is None:
        raise NotFound("no such pupil in the register")
    return found


def _or_none(value: str) -> str | None:
    return value or None


def legal_basis(config: ConnectorConfig) -> dict[str, str] | None:
    """The legal basis an offer from the workspace names: the transfer processing activity's
    in the register of processing activities (None: not configured, the dossier names none)."""
    activity = config.processing_activities.get("transfer")
    return activity.basis() if activity is not None else None


def dossier_from(
    pupil: dict[str, Any],
    values: dict[str, str],
    transfer_id: str,
    basis: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The dossier the form describes, for `pupil` (a register record), naming `basis` (its
    code and citation) as the legal basis; not yet validated."""
    new_address: dict[str, Any] | None = None
    if any(values[k] for k in ("street", "house_number", "house_letter", "postcode", "city")):
        number = values["house_number"]
        new_address = {
            "street": values["street"],
            "house_number": int(number) if number.isdigit() and len(number) < 7 else number,
            "house_letter": _or_none(values["house_letter"]),
            "postcode": values["postcode"],
            "city": values["city"],
            "municipality": values["to"],
        }
    guardians = []
    if any(
        values[k]
        for k in ("guardian_given_names", "guardian_family_name", "guardian_phone", "guardian_email")
    ):
        guardians.append(
            {
                "given_names": _or_none(values["guardian_given_names"]),
                "family_name": values["guardian_family_name"],
                "relation": values["guardian_relation"],
                "phone": _or_none(values["guardian_phone"]),
                "email": _or_none(values["guardian_email"]),
                "preferred_language": values["guardian_language"] or "nl",
            }
        )
    address = {k: v for k, v in pupil["address"].items() if v is not None}
    school = pupil.get("school")
    return {
        "transfer_id": transfer_id,
        "pupil": {
            k: pupil[k]
            for k in ("bsn", "given_names", "family_name_prefix", "family_name", "birth_date")
            if pupil.get(k) is not None
        },
        "previous_address": address,
        "new_address": new_address,
        "moved_on": _or_none(values["moved_on"]),
        "guardians": guardians,
        "school": {k: v for k, v in school.items() if v is not None} if school else None,
        "compulsory_education": {
            "status": values["status"],
            "exemption_reason": _or_none(values["exemption_reason"]),
        },
        "notes": _or_none(values["notes"]),
        **({"legal_basis": dict(basis)} if basis is not None else {}),
    }


def add_offer_routes(app: FastAPI) -> None:
    async def _form_page(
        request: Request,
        account: Account,
        pupil: dict[str, Any],
        *,
        status: int = 200,
        values: dict[str, str] | None = None,
        error: tuple[str, str] | None = None,
    ) -> Response:
        shown = {k: "" for k in FIELDS} | {"status": "leerplichtig", "guardian_relation": "parent"}
        shown.update(values or {})
        if not form_once.FORM_ID.fullmatch(shown["form_id"]):
            shown["form_id"] = form_once.new_id()
        return ws.pages.render(
            request,
            "offer_new.html",
            status=status,
            account=account,
            pupil=pupil,
            receivers=await _receivers(request),
            values=shown,
            error=error,
            statuses=STATUSES,
            exemptions=EXEMPTIONS,
            relations=RELATIONS,
            languages=LANGUAGES,
            legal_basis=legal_basis(ws.services_of(request).config),
        )

    @app.get("/outgoing/new", response_class=HTMLResponse)
    async def new_offer(request: Request, account: ws.ActingAccount) -> Response:
        _directory(request)  # without the hub and broker, say so before showing the pupil
        pupil = await _pupil(request, request.query_params.get("pupil", ""))
        await processing_log.record(ws.store_of(request), account.name, "pupil_viewed", pupil["id"])
        return await _form_page(request, account, pupil)

    @app.post("/outgoing/new", response_class=HTMLResponse)
    async def send_offer(request: Request, account: ws.ActingAccount) -> Response:
        form = await ws.read_form(request)
        services = ws.services_of(request)
        directory = _directory(request)
        pupil = await _pupil(request, form.get("pupil", ""))
        values = {k: form.get(k, "").strip() for k in FIELDS}
        values["notes"] = form.get("notes", "").strip()

        async def refused(field: str, why: str) -> Response:
            return await _form_page(request, account, pupil, status=400, values=values, error=(field, why))

        to = values["to"]
        if not _TENANT.fullmatch(to) or to not in await _receivers(request):
            return await refused("to", "not a tenant of the hub's directory that you can offer to")
        try:
            if not await directory.encryption_keys(to, refresh=True):
                return await refused("to", f"{to} has no keys registered to seal the dossier to")
        except NotFound:
            return await refused("to", "not a tenant of the hub's directory that you can offer to")
        transfer_id = transfers.new_transfer_id(services.config.tenant)
        try:
            basis = legal_basis(services.config)
            dossier = transfers.validate_dossier(dossier_from(pupil, values, transfer_id, basis))
        except SchemaInvalid as exc:  # the contract's words, without its prefix
            field = exc.field or "dossier"
            why = exc.message.split(": ", 1)[-1].removeprefix(f"{field}: ")
            return await refused(field, why)
        form_id = values["form_id"]
        if not form_once.FORM_ID.fullmatch(form_id):
            return await refused("form_id", "the form has no valid form id; open it again")
        store = ws.store_of(request)
        earlier = await form_once.claim(store, "offer", form_id)
        if earlier is not None:  # submitted twice: nothing is sent again
            log.info("workspace.offer_resubmitted", transfer_id=earlier or None, user=account.name)
            return ws.redirect_to(request, "/", done="already_offered", id=earlier or "tr-")
        try:
            sent = await transfers.offer(ws.connector_of(services), to, dossier)
        except BaseException:
            await form_once.release(store, "offer", form_id)
            raise
        verdict = None
        if services.hub_api is not None:
            try:
                verdict = await await_verdict(services.hub_api, sent.id, timeout=VERDICT_WAIT)
            except InbeeldError as exc:  # sent; only the verdict is unknown: the werkbak will tell
                log.warning(
                    "workspace.offer_verdict_unknown", transfer_id=transfer_id, error=type(exc).__name__
                )
        if verdict is not None and verdict.rejected:  # not routed: the form may be sent again
            await form_once.release(store, "offer", form_id)
            log.warning(
                "workspace.offer_refused", transfer_id=transfer_id, reason=verdict.reason, user=account.name
            )
            return await refused("to", verdict.describe())
        await form_once.sent(store, "offer", form_id, transfer_id)
        await processing_log.record(store, account.name, "transfer_offered", transfer_id)
        log.info("workspace.offered", transfer_id=transfer_id, to=to, user=account.name)
        return ws.redirect_to(request, "/", done="offered", id=transfer_id)
