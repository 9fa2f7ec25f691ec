"""Rendering pages: Jinja2 templates (autoescape on) with the request's language, its CSRF
token and the pages' base path at hand, and the one error page every refusal becomes.

A `Renderer` is made by each app with its own template directory and message catalogue; the
shared templates of this package (`webui/layout.html`, the page frame with the vendored CSS
and htmx) come behind the app's own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from webui import assets, i18n
from webui.sessions import CSRF_FIELD, session_of

SHARED_TEMPLATES = Path(__file__).parent / "templates"


def base_path(request: Request) -> str:
    """Where the pages are mounted (e.g. /console); links are made from it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def epoch_time(seconds: float | None) -> str:
    """Seconds since the epoch, shown as `local_time` does."""
    return "" if seconds is None else i18n.local_time(datetime.fromtimestamp(seconds, UTC))


def iso_time(text: str | None) -> str:
    """An ISO 8601 time (as an API answers it), shown as `local_time` does; "" if it is none."""
    if not text:
        return ""
    try:
        return i18n.local_time(datetime.fromisoformat(text))
    except ValueError:
        return ""


def theme_of(request: Request) -> str:
    """The NL Design System theme of the app serving the request (`app.state.theme`, set by
    the workspace from its config); Utrecht's by default, and for the console."""
    app = request.scope.get("app")
    theme = getattr(getattr(app, "state", None), "theme", None)
    return theme if theme in assets.THEMES else assets.DEFAULT_THEME


class Renderer:
    def __init__(self, templates: Path, catalogue: i18n.Catalogue) -> None:
        self.templates = templates
        self.catalogue = catalogue
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([templates, SHARED_TEMPLATES]),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["local_time"] = i18n.local_time
        self.env.filters["epoch_time"] = epoch_time
        self.env.filters["iso_time"] = iso_time

    def render(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        lang = i18n.choose(request)
        session = session_of(request)
        response = HTMLResponse(
            self.env.get_template(template).render(
                lang=lang,
                t=i18n.translator(self.catalogue, lang),
                base=base_path(request),
                csrf_field=CSRF_FIELD,
                csrf=session.csrf,
                user=session.user,
                path=request.url.path,
                theme=theme_of(request),
                **context,
            ),
            status_code=status,
        )
        if request.query_params.get("lang") in i18n.LANGUAGES:
            response.set_cookie(
                i18n.COOKIE, lang, max_age=365 * 86400, path="/", httponly=True, samesite="strict"
            )
        return response

    def error_page(self, request: Request, status: int, key: str, **values: object) -> HTMLResponse:
        """A clear page for a refusal or a failure: the message only, never a traceback."""
        return self.render(request, "webui/error.html", status=status, message_key=key, values=values)
