"""Rendering pages: Jinja2 templates (autoescape on) with the request's language, its CSRF
token and the pages' base path at hand, and the one error page every refusal becomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from hub.web import i18n
from hub.web.sessions import CSRF_FIELD, session_of

TEMPLATES = Path(__file__).parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["local_time"] = i18n.local_time


def base_path(request: Request) -> str:
    """Where the pages are mounted (e.g. /console); links are made from it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = i18n.choose(request)
    session = session_of(request)
    response = HTMLResponse(
        _env.get_template(template).render(
            lang=lang,
            t=i18n.translator(lang),
            base=base_path(request),
            csrf_field=CSRF_FIELD,
            csrf=session.csrf,
            user=session.user,
            path=request.url.path,
            **context,
        ),
        status_code=status,
    )
    if request.query_params.get("lang") in i18n.LANGUAGES:
        response.set_cookie(
            i18n.COOKIE, lang, max_age=365 * 86400, path="/", httponly=True, samesite="strict"
        )
    return response


def error_page(request: Request, status: int, key: str, **values: object) -> HTMLResponse:
    """A clear page for a refusal or a failure: the message only, never a traceback."""
    return render(request, "error.html", status=status, message_key=key, values=values)
