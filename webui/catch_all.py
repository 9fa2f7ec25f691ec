"""The last line of a web app: a bug (an exception no handler took) is logged with its
traceback for whoever runs the server and answered with the app's plain error page; the
person at the browser never sees the traceback."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("inbeeld.web")


class CatchAll:
    def __init__(self, app: ASGIApp, error_page: Callable[[Request], Response], event: str) -> None:
        self.app = app
        self.error_page = error_page
        self.event = event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log.error(self.event, method=scope.get("method"), error=type(exc).__name__, exc_info=True)
            if started:
                raise
            await self.error_page(Request(scope))(scope, receive, send)
