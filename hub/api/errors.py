"""The one mapping from the error tree to HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from hub.errors import ServiceUnavailable
from hub.registry import RegistryError
from schemas.errors import Conflict, ContractError, InbeeldError, NotFound, RoutingRefused


def status_for(exc: InbeeldError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, ServiceUnavailable):
        return 503
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, RegistryError) and "already exists" in exc.message:
        return 409
    if isinstance(exc, RoutingRefused):
        return 403
    if isinstance(exc, ContractError | RegistryError):
        return 422
    return 400


def response_for(exc: InbeeldError) -> JSONResponse:
    """The answer to a refusal (also used outside the exception handlers, e.g. by
    `hub.api.nesting`, which refuses a body before FastAPI parses it)."""
    body = {"reason": exc.reason, "detail": exc.message}
    if exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=status_for(exc))


def install(app: FastAPI) -> None:
    @app.exception_handler(InbeeldError)
    async def _inbeeld_error(_request: Request, exc: InbeeldError) -> JSONResponse:
        return response_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input, which may hold personal data and may not even
        # be JSON (a body with -Infinity made it fail with a 500): name the place, not the value.
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(DBAPIError)
    async def _store_refused_value(_request: Request, exc: DBAPIError) -> JSONResponse:
        # SQLSTATE class 22 (data exception): a value from the request the store cannot hold,
        # e.g. a NUL character in a path segment (PostgreSQL 22021). The caller's fault: 422.
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
        if not sqlstate.startswith("22"):
            raise exc
        body = {"reason": "invalid_value", "detail": "a value in the request cannot be stored (e.g. a NUL)"}
        return JSONResponse(body, status_code=422)
