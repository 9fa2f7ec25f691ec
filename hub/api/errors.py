"""The one mapping from errors to HTTP: every error the API answers is an RFC 9457 problem
(`application/problem+json`) with the project's `reason` code beside the standard members.

    InbeeldError (schemas.errors, hub.errors)      status
    ├── NotFound                                   404
    ├── Conflict                                   409
    ├── Gone                                       410
    ├── ServiceUnavailable, Transient              503
    ├── RoutingRefused                             403
    ├── ContractError, RegistryError               422
    └── anything else                              400
    FastAPI's request validation                   422  invalid_request (names the place, not the value)
    HTTPException (auth, unknown route, ...)       its status, reason after the status
    a store that cannot hold a value (SQLSTATE 22) 422  invalid_value
    a concurrent duplicate (IntegrityError)        409  conflict
    anything else (a bug)                          500  internal_error (logged as api.bug)

Routes declare what they can answer with `problems(401, 404, ...)`; the OpenAPI document then
shows the Problem schema under `application/problem+json` for each of those statuses."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException

from hub.errors import ServiceUnavailable, Transient
from hub.registry import RegistryError
from schemas.errors import Conflict, ContractError, Gone, InbeeldError, NotFound, RoutingRefused

log = structlog.get_logger("inbeeld.api")
MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:nld:inbeeld:problem:"
# The reason of an error that is not one of ours, by its HTTP status.
_HTTP_REASONS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    422: "invalid_request",
    503: "service_unavailable",
}
_DESCRIPTIONS = {
    400: "The body is not JSON, or the request cannot be carried out as it stands",
    401: "No valid bearer token (`WWW-Authenticate: Bearer`)",
    403: "The token's scope (operator or tenant) may not do this, or the hub refuses the step",
    404: "No such record, or not yours",
    409: "The request contradicts the current state",
    410: "What was asked for is older than the hub keeps",
    422: "The request is malformed or a value is not acceptable",
    503: "RabbitMQ, its management API or the database cannot be reached",
}


class InvalidParam(BaseModel):
    loc: list[str | int] = Field(description="Where: `body`, `query`, `path` and the field's path")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem detail, with the project's reason code."""

    type: str = Field(description=f"`{TYPE_PREFIX}<reason>`")
    title: str = Field(description="The HTTP status phrase")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong, for a person; never personal data")
    reason: str = Field(description="A stable machine-readable code, as in `hub.rejected`")
    field: str | None = Field(None, description="The field at fault, where there is one")
    errors: list[InvalidParam] | None = Field(None, description="Each invalid parameter (422 only)")


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that can answer these error statuses."""
    return {s: {"model": Problem, "description": _DESCRIPTIONS[s]} for s in statuses}


def status_for(exc: InbeeldError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, Gone):
        return 410
    if isinstance(exc, ServiceUnavailable | Transient):
        return 503
    if isinstance(exc, RoutingRefused):
        return 403
    if isinstance(exc, ContractError | RegistryError):
        return 422
    return 400


def response_for(exc: InbeeldError) -> JSONResponse:
    """The answer to a refusal (also used outside the exception handlers, e.g. by
    `hub.api.nesting`, which refuses a body before FastAPI parses it)."""
    return problem(status_for(exc), exc.reason, exc.message, field=exc.field)


def problem(
    status: int,
    reason: str,
    detail: str,
    *,
    field: str | None = None,
    errors: Sequence[InvalidParam] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=TYPE_PREFIX + reason,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        reason=reason,
        field=field,
        errors=list(errors) if errors is not None else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=headers, media_type=MEDIA_TYPE
    )


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "?"))  # the template (/ledger/{event_id}), not the values


def _where(loc: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in loc) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(InbeeldError)
    async def _inbeeld_error(_request: Request, exc: InbeeldError) -> JSONResponse:
        return response_for(exc)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        reason = _HTTP_REASONS.get(exc.status_code, "error")
        return problem(exc.status_code, reason, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own answer echoes the input, which may hold personal data and may not even
        # be JSON (a body with -Infinity made it fail with a 500): name the place, not the value.
        errors = [
            InvalidParam(
                loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
                msg=str(e.get("msg", "")),
                type=str(e.get("type", "")),
            )
            for e in exc.errors()
        ]
        first = errors[0] if errors else None
        detail = f"{_where(first.loc)}: {first.msg}" if first else "the request is not valid"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return problem(422, "invalid_request", detail, errors=errors)

    @app.exception_handler(DBAPIError)
    async def _store_refused_value(_request: Request, exc: DBAPIError) -> JSONResponse:
        # SQLSTATE class 22 (data exception): a value from the request the store cannot hold,
        # e.g. a NUL character in a path segment (PostgreSQL 22021). The caller's fault: 422.
        sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
        if isinstance(exc, IntegrityError):
            # A duplicate that a concurrent request wrote between a service's check and its
            # insert (the services turn the ones they foresee into a Conflict themselves).
            return problem(409, "conflict", "a concurrent request changed the same record; try again")
        if not sqlstate.startswith("22"):
            raise exc
        return problem(422, "invalid_value", "a value in the request cannot be stored (e.g. a NUL)")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # Starlette still re-raises it (so the server logs the traceback); the caller gets a
        # problem like any other, naming nothing of the request.
        log.error("api.bug", method=request.method, route=_route(request), error=type(exc).__name__)
        return problem(500, "internal_error", "the hub could not answer this request; its log says why")

    app.openapi = _problem_openapi(app.openapi)  # type: ignore[method-assign]


def _problem_openapi(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """FastAPI files every declared response under the route's own media type (JSON), and adds
    its own 422 body to routes that declare none: show the problems as what they are."""

    def openapi() -> dict[str, Any]:
        schema = generate()
        ref = "#/components/schemas/Problem"
        for operation in (op for ops in schema.get("paths", {}).values() for op in ops.values()):
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                declared = content.get("application/json", {}).get("schema", {}).get("$ref", "")
                if declared.endswith(("/Problem", "/HTTPValidationError")):
                    response["content"] = {MEDIA_TYPE: {"schema": {"$ref": ref}}}
                    if declared.endswith("/HTTPValidationError"):
                        response["description"] = _DESCRIPTIONS[int(code)]
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        if "Problem" not in components:  # no route declared one: only FastAPI's 422s were replaced
            problem_schema = Problem.model_json_schema(ref_template=_REF)
            components.update(problem_schema.pop("$defs", {}))
            components["Problem"] = problem_schema
        return schema

    return openapi


_REF = "#/components/schemas/{model}"
