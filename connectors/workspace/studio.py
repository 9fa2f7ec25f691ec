"""The template studio: this tenant's letter templates, written and published in the workspace.

    GET  /studio                          the bundles in the local catalogue, with their versions
    GET  /studio/{id}/diff                what the newest version (or ?to=) changed against the one
                                          used before it (or ?from=): for a subscriber, too
    GET  /studio/{id}                     edit the newest version of one of this tenant's bundles:
                                          every language's subject and body side by side, the
                                          manifest's placeholders, a live preview and the checks
    POST /studio/{id}/preview             (htmx) the preview with the manifest's sample values, per
                                          language or bilingual, and each language's problems at
                                          their line
    POST /studio/{id}/publish             check, sign and send a new version to the subscribers
    POST /studio/{id}/withdraw            tell the subscribers to stop using a version

Only accounts whose role may edit templates (`Account.may_edit_templates`) get in. Publishing
and withdrawing go through `connectors.templates.publish_bundle` / `withdraw`, as
`inbeeld-connector templates publish` / `withdraw` do, then wait for the hub's verdict; a
published version is also kept in this tenant's own catalogue, so the next edit starts from it.
The checks are `connectors.letters.drafts.check_draft`'s. Forms carry the session's CSRF token;
they may be larger than the workspace's other forms (six languages of text), up to
`MAX_STUDIO_FORM` bytes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from connectors.accounts import Account
from connectors.client import ConnectorError
from connectors.letters import LetterError, Letterhead, bundle_diff, compose, letter_html, sample_values
from connectors.letters.drafts import Problem, check_draft
from connectors.services import ConnectorServices
from connectors.templates import (
    TemplateCatalogue,
    TemplateRefused,
    TemplateUnavailable,
    publish_bundle,
    semver_key,
    withdraw,
)
from connectors.verdict import DEFAULT_TIMEOUT, Verdict, await_verdict, recipients
from connectors.workspace.edge import (
    CsrfRefused,
    Forbidden,
    account_of,
    connector_of,
    pages,
    redirect_to,
    services_of,
)
from schemas.errors import ContractError, InbeeldError, NotFound
from schemas.events import TemplatePublished, TemplateWithdrawn
from webui import i18n
from webui.i18n import Translate
from webui.sessions import check_csrf

__all__ = ["MAX_STUDIO_FORM", "add_studio_routes"]

log = structlog.get_logger("inbeeld.connector.studio")
MAX_STUDIO_FORM = 1024 * 1024  # six languages of up to a few pages each, percent-encoded
MAX_FIELDS = 40
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_VERSION = re.compile(r"^[0-9A-Za-z.+-]{1,64}$")
_UNDECLARED = re.compile(r"^\(\(([a-z0-9_]+)\)\) is not a declared placeholder$")
_NOT_NEWER = re.compile(r"^version must be newer than (\S+)$")
_NOT_SEMVER = "version: must be a semantic version, e.g. 1.2.0"
_BODY = re.compile(r"<body>(.*)</body>", re.S)


class FormTooLarge(Exception):
    pass


async def _editor(account: Annotated[Account, Depends(account_of)]) -> Account:
    if not account.may_edit_templates:
        raise Forbidden
    return account


Editor = Annotated[Account, Depends(_editor)]


async def _studio_form(request: Request) -> dict[str, str]:
    """The form's fields (blank ones kept: an emptied body is a problem to show), bounded in
    size before it is all read, and refused without the session's CSRF token."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_STUDIO_FORM:
        raise FormTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_STUDIO_FORM:
            raise FormTooLarge
    try:
        fields = dict(
            parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
        )
    except ValueError:
        raise ContractError("too many form fields") from None
    if not check_csrf(request, fields):
        raise CsrfRefused
    return fields


def _template_id(template_id: str) -> str:
    if not _ID.fullmatch(template_id):
        raise ContractError("not a template id", field="template_id")
    return template_id


def _catalogue(request: Request) -> TemplateCatalogue:
    return services_of(request).catalogue()


async def _own_newest(request: Request, template_id: str) -> TemplatePublished:
    """The newest usable version of one of this tenant's own bundles: what an edit starts from."""
    tenant = services_of(request).config.tenant
    entries = [
        e for e in await _catalogue(request).entries(_template_id(template_id)) if e.status == "active"
    ]
    if not entries:
        raise NotFound(f"no usable version of {template_id} in the catalogue")
    if entries[0].publisher != tenant:
        raise ContractError(
            f"{template_id} is published by {entries[0].publisher}; "
            f"the studio edits {tenant}'s own templates",
            field="template_id",
        )
    return await _catalogue(request).bundle(template_id, entries[0].version)


def next_version(version: str) -> str:
    """The next minor version: 1.0.3 -> 1.1.0 (a pre-release or build part is dropped)."""
    found = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
    return f"{found[1]}.{int(found[2]) + 1}.0" if found else "1.0.0"


def _draft_data(base: TemplatePublished, form: Mapping[str, str]) -> dict[str, Any]:
    """A draft as a `template.published` payload: the base bundle's languages and placeholders,
    with the form's version, title, subjects and bodies."""
    languages: dict[str, dict[str, str]] = {}
    for lang, text in base.languages.items():
        body = form.get(f"body_{lang}", "").replace("\r\n", "\n")
        languages[lang] = {
            "direction": text.direction,
            "subject": form.get(f"subject_{lang}", "").strip(),
            "body": body.strip("\n") + "\n" if body.strip() else "",
        }
    return {
        "template_id": base.template_id,
        "version": form.get("version", "").strip(),
        "publisher": base.publisher,
        "title": form.get("title", "").strip(),
        "languages": languages,
        "placeholders": [p.model_dump(exclude_none=True) for p in base.placeholders],
    }


async def _problems(
    request: Request, data: Mapping[str, Any]
) -> tuple[list[Problem], TemplatePublished | None]:
    """`check_draft`'s problems, and the version's: a SemVer (said even when the texts have
    problems, which `check_draft` reports first) newer than every version held."""
    draft = check_draft(data)
    problems = list(draft.problems)
    version = str(data["version"])
    held = [e.version for e in await _catalogue(request).entries(str(data["template_id"]))]
    newest = max(held, key=semver_key, default=None)
    if not any(p.part == "version" for p in problems):
        if semver_key(version)[0] < 0:
            problems.append(Problem(_NOT_SEMVER, part="version"))
        elif newest is not None and semver_key(version) <= semver_key(newest):
            problems.append(Problem(f"version must be newer than {newest}", part="version"))
    return problems, draft.bundle if not problems else None


def _say(t: Translate, problem: Problem) -> str:
    """A problem for the editor: Dutch where the studio knows it, else the check's own words."""
    undeclared = _UNDECLARED.fullmatch(problem.message)
    older = _NOT_NEWER.fullmatch(problem.message)
    if undeclared:
        text = t("studio.problem.undeclared", name=undeclared[1])
    elif older:
        text = t("studio.problem.not_newer", version=older[1])
    elif problem.message == _NOT_SEMVER or (
        problem.part == "version" and "semantic version" in problem.message
    ):
        text = t("studio.problem.semver")
    else:
        text = problem.message
    if problem.line is not None:
        return t("studio.at_line", line=problem.line, message=text)
    return text


def _placed(t: Translate, problems: list[Problem]) -> dict[str, list[str]]:
    """Problems by where they are shown: `<lang>-subject`, `<lang>-body` or `bundle`."""
    out: dict[str, list[str]] = {}
    for p in problems:
        if p.lang is None:
            where = "bundle"
        else:
            where = f"{p.lang}-{'subject' if p.part == 'subject' else 'body'}"
        out.setdefault(where, []).append(_say(t, p))
    return out


def _letterhead(services: ConnectorServices) -> Letterhead:
    configured = services.config.letterhead
    if configured is None:
        return Letterhead(name=services.config.tenant)
    return Letterhead(
        name=configured.name,
        return_address=tuple(configured.return_address or ()),
        department=configured.department,
        phone=configured.phone,
        email=configured.email,
        website=configured.website,
        visiting_address=tuple(configured.visiting_address or ()),
    )


def _preview(
    services: ConnectorServices,
    base: TemplatePublished,
    data: Mapping[str, Any],
    problems: list[Problem],
    lang: str,
    bilingual: bool,
) -> tuple[str | None, str | None]:
    """The letter with the manifest's sample values as HTML to put in the page (the body of the
    HTML letter renderer's document: its sections carry their `lang` and `dir`), or None and why
    not: a catalogue key, or the renderer's own message."""
    if lang not in base.languages:
        lang = "nl"
    bilingual = bilingual and lang != "nl"
    failing = {p.lang for p in problems if p.lang is not None}
    if failing & ({lang, "nl"} if bilingual else {lang}) or "nl" in failing:
        return None, "studio.preview_blocked"
    good = {k: v for k, v in data["languages"].items() if k not in failing}
    bundle = None
    for fallback in ({}, {"version": base.version}, {"version": base.version, "title": base.title}):
        try:
            bundle = TemplatePublished.model_validate({**data, "languages": good, **fallback})
            break
        except ValidationError:
            continue
    if bundle is None:
        return None, "studio.preview_blocked"
    try:
        letter = compose(bundle, lang, sample_values(bundle.placeholders), bilingual=bilingual)
        html = letter_html(letter, _letterhead(services), embed_fonts=False)
    except LetterError as exc:
        return None, exc.message
    found = _BODY.search(html)
    return (found[1] if found else None), None


def _edit_context(
    request: Request,
    base: TemplatePublished,
    form: Mapping[str, str] | None,
    newest: str,
) -> dict[str, Any]:
    form = form or {}
    lang = form.get("preview_lang", "nl")
    return {
        "b": base,
        "values": {
            "version": form.get("version", next_version(newest)),
            "title": form.get("title", base.title),
            **{f"subject_{k}": form.get(f"subject_{k}", v.subject) for k, v in base.languages.items()},
            **{f"body_{k}": form.get(f"body_{k}", v.body) for k, v in base.languages.items()},
        },
        "preview_lang": lang if lang in base.languages else "nl",
        "langs": sorted(base.languages, key=lambda k: (k != "nl", k)),  # Dutch first
        "bilingual": form.get("bilingual") == "1",
    }


async def _edit_page(
    request: Request,
    account: Account,
    base: TemplatePublished,
    form: Mapping[str, str] | None,
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    services = services_of(request)
    entries = await _catalogue(request).entries(base.template_id)
    newest = max((e.version for e in entries), key=semver_key, default=base.version)
    context = _edit_context(request, base, form, newest)
    data = _draft_data(base, {**context["values"]})
    problems, _ = await _problems(request, data)
    t = i18n.translator(pages.catalogue, i18n.choose(request))
    letter, why = await run_in_threadpool(
        _preview, services, base, data, problems, context["preview_lang"], context["bilingual"]
    )
    return pages.render(
        request,
        "studio/edit.html",
        status=status,
        account=account,
        **context,
        problems=_placed(t, problems),
        letter=letter,
        why=why,
        entries=entries,
        **{"notice": None, "refused": None, "detail": None, **extra},
    )


async def _verdict(services: ConnectorServices, event_id: str) -> Verdict:
    if services.hub_api is None:
        raise ConnectorError("the workspace has no connection to the hub")
    return await await_verdict(services.hub_api, event_id, timeout=DEFAULT_TIMEOUT)


def _diff_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "same")


def _not_routed(verdict: Verdict) -> tuple[int, str, str | None]:
    """The page's status and message when the hub did not route what the studio sent."""
    if verdict.rejected:
        return 409, "studio.hub_refused", verdict.describe()
    return 504, "studio.no_verdict", None


def add_studio_routes(app: FastAPI) -> None:
    """Mount the studio on the workspace app (see the module doc)."""
    app.mount(
        "/studio/assets", StaticFiles(directory=Path(__file__).parent / "static" / "studio"), name="studio"
    )

    @app.exception_handler(FormTooLarge)
    async def _too_large(request: Request, _exc: FormTooLarge) -> Response:
        return pages.error_page(request, 413, "error.413")

    @app.exception_handler(TemplateRefused)  # e.g. that version was just kept here with other text
    async def _refused(request: Request, exc: TemplateRefused) -> Response:
        return pages.error_page(request, 409, "error.400", message=exc.message)

    router = APIRouter()

    @router.get("/studio", response_class=HTMLResponse)
    async def studio(request: Request, account: Editor) -> Response:
        tenant = services_of(request).config.tenant
        grouped: dict[str, list[Any]] = {}
        for entry in await _catalogue(request).entries():
            grouped.setdefault(entry.template_id, []).append(entry)
        return pages.render(request, "studio/list.html", grouped=grouped, tenant=tenant, account=account)

    @router.get("/studio/{template_id}/diff", response_class=HTMLResponse)
    async def diff(request: Request, template_id: str, account: Editor) -> Response:
        """What a version changed against the usable one before it (default: the newest usable
        version against the one used before it), as `inbeeld-connector templates diff` says."""
        asked = {k: request.query_params.get(k) for k in ("from", "to")}
        if any(v is not None and not _VERSION.fullmatch(v) for v in asked.values()):
            raise ContractError("not a version", field="version")
        try:
            before, after = await _catalogue(request).versions_to_compare(
                _template_id(template_id), asked["from"], asked["to"]
            )
        except TemplateUnavailable as exc:
            return pages.render(
                request,
                "studio/diff.html",
                account=account,
                template_id=template_id,
                why=exc.message,
                lines=[],
            )
        lines = [(_diff_kind(line), line) for line in bundle_diff(before, after).splitlines()]
        return pages.render(
            request,
            "studio/diff.html",
            account=account,
            template_id=template_id,
            why=None,
            before=before.version,
            after=after.version,
            lines=lines,
        )

    @router.get("/studio/{template_id}", response_class=HTMLResponse)
    async def edit(request: Request, template_id: str, account: Editor) -> Response:
        base = await _own_newest(request, template_id)
        services = services_of(request)
        done = request.query_params.get("done")
        version = request.query_params.get("version", "")
        event_id = request.query_params.get("event", "")
        notice = None
        if done in ("published", "withdrawn") and _VERSION.fullmatch(version) and _ID.fullmatch(event_id):
            reached = None
            if services.hub_api is not None:
                try:
                    reached = await recipients(services.hub_api, event_id)
                except (InbeeldError, OSError):
                    reached = None
            notice = {"done": done, "version": version, "reached": reached}
        return await _edit_page(request, account, base, None, notice=notice)

    @router.post("/studio/{template_id}/preview", response_class=HTMLResponse)
    async def preview(request: Request, template_id: str, account: Editor) -> Response:
        form = await _studio_form(request)
        base = await _own_newest(request, template_id)
        context = _edit_context(request, base, form, base.version)
        data = _draft_data(base, context["values"])
        problems, _ = await _problems(request, data)
        t = i18n.translator(pages.catalogue, i18n.choose(request))
        letter, why = await run_in_threadpool(
            _preview,
            services_of(request),
            base,
            data,
            problems,
            context["preview_lang"],
            context["bilingual"],
        )
        return pages.render(
            request,
            "studio/preview.html",
            **context,
            problems=_placed(t, problems),
            letter=letter,
            why=why,
            oob=True,
        )

    @router.post("/studio/{template_id}/publish", response_class=HTMLResponse)
    async def publish(request: Request, template_id: str, account: Editor) -> Response:
        form = await _studio_form(request)
        base = await _own_newest(request, template_id)
        services = services_of(request)
        data = _draft_data(base, form)
        _, bundle = await _problems(request, data)
        if bundle is None:
            return await _edit_page(request, account, base, form, status=422, refused="studio.not_published")
        event = await publish_bundle(connector_of(services), services.sealer, bundle)
        verdict = await _verdict(services, event.id)
        log.info(
            "studio.published",
            template=bundle.template_id,
            version=bundle.version,
            user=account.name,
            verdict=verdict.status,
        )
        if not verdict.routed:
            status, key, detail = _not_routed(verdict)
            return await _edit_page(request, account, base, form, status=status, refused=key, detail=detail)
        await _catalogue(request).import_bundle(bundle)
        return redirect_to(
            request, f"/studio/{template_id}", done="published", version=bundle.version, event=event.id
        )

    @router.post("/studio/{template_id}/withdraw", response_class=HTMLResponse)
    async def withdraw_version(request: Request, template_id: str, account: Editor) -> Response:
        form = await _studio_form(request)
        base = await _own_newest(request, template_id)
        services = services_of(request)
        version = form.get("version", "").strip()
        held = {e.version for e in await _catalogue(request).entries(template_id) if e.status == "active"}
        if version not in held:
            raise ContractError(f"{template_id}@{version} is not a usable version held here", field="version")
        if len(held) == 1:
            raise ContractError(
                f"{template_id}@{version} is the only usable version: publish a newer one first",
                field="version",
            )
        reason = " ".join(form.get("reason", "").split())[:200] or "withdrawn"
        event = await withdraw(connector_of(services), services.sealer, base.template_id, version, reason)
        verdict = await _verdict(services, event.id)
        log.info(
            "studio.withdraw",
            template=template_id,
            version=version,
            user=account.name,
            verdict=verdict.status,
        )
        if not verdict.routed:
            status, key, detail = _not_routed(verdict)
            return await _edit_page(request, account, base, None, status=status, refused=key, detail=detail)
        await _catalogue(request).handle(
            event, TemplateWithdrawn(template_id=base.template_id, version=version, reason=reason)
        )
        return redirect_to(
            request, f"/studio/{template_id}", done="withdrawn", version=version, event=event.id
        )

    app.include_router(router)
