"""Response headers every page gets, and a bound on what a request may send.

Content-Security-Policy allows only this origin's own files: no inline script or style, nothing
from another host, no framing. A query string beyond `MAX_QUERY` bytes is refused (414) before
any route sees it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_QUERY = 2048

Refuse = Callable[[Scope, Receive, Send], Awaitable[None]]


class SecurityHeaders:
    """Adds HEADERS to every response and answers a too long query string with `too_long`.
    Static files may be cached (they carry no data); pages may not."""

    def __init__(self, app: ASGIApp, too_long: Refuse, static_prefix: str = "/static/") -> None:
        self.app = app
        self.too_long = too_long
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].removeprefix(scope.get("root_path", "")).startswith(self.static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    if not (static and name == "Cache-Control"):
                        headers[name] = value
            await send(message)

        if len(scope.get("query_string", b"")) > MAX_QUERY:
            await self.too_long(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
