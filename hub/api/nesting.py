"""Request bodies nested too deeply are refused before FastAPI parses them.

FastAPI reads a JSON body with `json.loads`, which recurses once per level: a body nested some
thousands of levels deep raises `RecursionError`, which FastAPI turns into a bare 400 "There
was an error parsing the body". This ASGI middleware reads the body first and answers a body
nested beyond `schemas.nesting.MAX_DEPTH` with the project's own refusal (422, reason
`too_deep`); any other body is handed on unchanged.
"""

from __future__ import annotations

from email.message import Message

from starlette.types import ASGIApp, Receive, Scope, Send

from hub.api.errors import response_for
from schemas.errors import TooDeep
from schemas.nesting import check_json

__all__ = ["BoundedJsonBodies"]

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _parsed_as_json(scope: Scope) -> bool:
    """Whether FastAPI would read this request's body as JSON: no content type, or
    `application/json` / `application/*+json` (what fastapi.routing checks)."""
    if scope.get("method") not in _WITH_BODY:
        return False
    value = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), None)
    if value is None:
        return True
    message = Message()
    message["content-type"] = value.decode("latin-1")
    subtype = message.get_content_subtype()
    is_json = subtype == "json" or subtype.endswith("+json")
    return message.get_content_maintype() == "application" and is_json


class BoundedJsonBodies:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _parsed_as_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nothing to answer
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            check_json(body, what="the request body")
        except TooDeep as exc:
            await response_for(exc)(scope, receive, send)
            return
        replayed = False

        async def replay() -> dict[str, object]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())

        await self.app(scope, replay, send)
