"""The one mapping from the error tree to HTTP status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from hub.errors import ServiceUnavailable
from hub.registry import RegistryError
from schemas.errors import ContractError, InbeeldError, NotFound, RoutingRefused


def status_for(exc: InbeeldError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, ServiceUnavailable):
        return 503
    if isinstance(exc, RegistryError) and "already exists" in exc.message:
        return 409
    if isinstance(exc, RoutingRefused):
        return 403
    if isinstance(exc, ContractError | RegistryError):
        return 422
    return 400


def install(app: FastAPI) -> None:
    @app.exception_handler(InbeeldError)
    async def _inbeeld_error(_request: Request, exc: InbeeldError) -> JSONResponse:
        body = {"reason": exc.reason, "detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(body, status_code=status_for(exc))
