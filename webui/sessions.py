"""The session cookie: signed (itsdangerous), HttpOnly, SameSite=Strict, Secure when the page is
served over TLS; it expires after `idle` seconds without a request. It holds who is logged in
(or no one) and the CSRF token that every form must send back.

`SessionMiddleware` reads the cookie into `request.state.session` and writes it back on every
answer to a person's request, so the idle time starts again; not on a passive one (htmx polling
a partial with GET, a static file), so a page left open does not keep its session alive. An htmx
POST is a person typing or choosing (the studio's live preview): it counts. `check_csrf`
compares a form's token with the session's. Apps served from the same host give their cookies
different names (`cookie`): a browser does not tell ports apart."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "inbeeld_session"
CSRF_FIELD = "csrf"


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    user: str | None = None
    expired: bool = False  # the request came with a session that timed out
    cleared: bool = False  # log out: the answer removes the cookie

    def log_in(self, user: str) -> None:
        """A new CSRF token at login, so a token seen before it is worthless after."""
        self.user = user
        self.csrf = secrets.token_urlsafe(32)

    def log_out(self) -> None:
        self.user = None
        self.cleared = True


class SessionMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        secret: str,
        idle: int,
        path: str = "/",
        static_prefix: str = "/static/",
        cookie: str = COOKIE,
    ) -> None:
        self.app = app
        self.cookie = cookie
        self.static_prefix = static_prefix
        self.serializer = URLSafeTimedSerializer(secret, salt="inbeeld.web.session")
        self.idle = idle
        self.path = path

    def _load(self, cookie: str | None) -> Session:
        if not cookie:
            return Session()
        try:
            data = self.serializer.loads(cookie, max_age=self.idle)
        except SignatureExpired:
            return Session(expired=True)
        except BadSignature:
            return Session()
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return Session()
        user = data.get("user")
        return Session(csrf=data["csrf"], user=user if isinstance(user, str) else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        session = self._load(request.cookies.get(self.cookie))
        scope.setdefault("state", {})["session"] = session
        secure = scope.get("scheme") == "https"
        polled = "hx-request" in request.headers and scope["method"] in ("GET", "HEAD")
        passive = polled or scope["path"].removeprefix(scope.get("root_path", "")).startswith(
            self.static_prefix
        )
        user_before = session.user

        async def send_with_cookie(message: Message) -> None:
            changed = session.cleared or session.user != user_before
            if message["type"] == "http.response.start" and (changed or not passive):
                headers = MutableHeaders(scope=message)
                if session.cleared:
                    value, max_age = "", 0
                else:
                    value = self.serializer.dumps({"csrf": session.csrf, "user": session.user})
                    max_age = self.idle
                attributes = f"Path={self.path}; Max-Age={max_age}; HttpOnly; SameSite=Strict"
                headers.append(
                    "Set-Cookie", f"{self.cookie}={value}; {attributes}{'; Secure' if secure else ''}"
                )
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session


def check_csrf(request: Request, form: dict[str, str]) -> bool:
    """Does the form carry this session's CSRF token? (A form without a session never does.)"""
    sent = form.get(CSRF_FIELD, "")
    return bool(sent) and hmac.compare_digest(sent.encode(), session_of(request).csrf.encode())
