"""The connector's one client of the hub's HTTP API: base URL, bearer token, timeout, and the
mapping of the hub's answers to our error tree, written once.

    async with HubApi("https://hub.example", token) as api:   # a tenant API token
        directory = Directory(api)                              # GET /tenants/.../keys, PUT /keys
        status = TransferStatus(api)                            # GET /transfers
        me = await api.get("/tenants/me")

The hub answers every refusal as an RFC 9457 problem (`application/problem+json`) with a
`reason` code beside `detail` (`hub.api.errors`). A refusal whose `reason` names a class of
`schemas.errors` becomes that class (e.g. 409 `key_replacement_refused` ->
`KeyReplacementRefused`, 422 `schema_invalid` -> `SchemaInvalid`); otherwise 404 is
`NotFound`, 409 `Conflict`, 410 `Gone`, and anything else (401, 403, 5xx, ...) a `HubApiError` carrying
the status and the hub's reason. `HubApiError` is also what an unreachable hub or an answer
that is not JSON raises: the caller may retry it. A message names the request and the hub's
detail, never a request body.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx

from schemas import errors, nesting
from schemas.errors import Conflict, Gone, InbeeldError, NotFound, TooDeep
from schemas.tls import handshake_failure, presents_certificate

__all__ = ["HubApi", "HubApiError"]

DEFAULT_TIMEOUT = 10.0
_MAX_DETAIL = 500


class HubApiError(InbeeldError):
    """The hub cannot be asked, or answers with a status that is not a domain refusal."""

    reason = "hub_api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        hub_reason: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.status = status  # None: no answer at all
        self.hub_reason = hub_reason


def _by_reason() -> dict[str, type[InbeeldError]]:
    """Every refusal class of the wire contract (`schemas.errors`) by its reason code."""
    found: dict[str, type[InbeeldError]] = {}
    todo: list[type[InbeeldError]] = list(InbeeldError.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__ == errors.__name__:
            found[cls.reason] = cls
    return found


_REFUSALS = _by_reason()


class HubApi:
    """One `httpx.AsyncClient` to the hub, authenticated with a bearer token (None: only for
    `health`). Close it (or use it as an async context manager) when done; the users it is
    handed to do not close it."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url
        self._ssl_context = ssl_context  # for https://: CA bundle, client certificate (schemas.tls)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"} if token is not None else None,
            timeout=timeout,
            transport=transport,
            verify=ssl_context if ssl_context is not None else True,
        )

    async def __aenter__(self) -> HubApi:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def put(self, path: str, json: Any) -> Any:
        return await self.request("PUT", path, json=json)

    async def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        """The decoded JSON answer (None for 204); a refusal raised as described above."""
        try:
            response = await self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            if why := self._tls_failure(exc):
                raise HubApiError(f"cannot ask the hub for {method} {path}: {why}") from None
            raise HubApiError(f"cannot reach the hub for {method} {path} ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise _refusal(method, path, response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return nesting.loads(response.content, what="the hub's answer")
        except (ValueError, TooDeep):
            raise HubApiError(
                f"the hub's answer to {method} {path} is not JSON", status=response.status_code
            ) from None

    async def health(self) -> int:
        """The HTTP status of `GET /health` (no token needed); `HubApiError` if unreachable."""
        try:
            response = await self._http.get("/health")
        except httpx.HTTPError as exc:
            raise HubApiError(
                self._tls_failure(exc) or f"cannot reach {self.base_url} ({type(exc).__name__})"
            ) from None
        return response.status_code

    def _tls_failure(self, exc: BaseException) -> str | None:
        url = httpx.URL(self.base_url)
        if url.scheme != "https":
            return None
        where = f"the hub's API at {url.host}:{url.port or 443}"
        return handshake_failure(exc, where, client_cert=presents_certificate(self._ssl_context))


def _refusal(method: str, path: str, response: httpx.Response) -> InbeeldError:
    """The error of our tree that a hub's error answer stands for."""
    status = response.status_code
    body = _problem(response)
    reason = body.get("reason") if isinstance(body.get("reason"), str) else None
    detail = str(body["detail"])[:_MAX_DETAIL] if body.get("detail") is not None else response.reason_phrase
    field = body.get("field") if isinstance(body.get("field"), str) else None
    known = _REFUSALS.get(reason) if reason is not None else None
    if known is not None:
        return known(detail, field=field)
    if status == 404:
        return NotFound(detail, field=field)
    if status == 409:
        return Conflict(detail, field=field)
    if status == 410:
        return Gone(detail, field=field)
    named = f" {reason}" if reason else ""
    return HubApiError(
        f"the hub refused {method} {path}: HTTP {status}{named}: {detail}",
        status=status,
        hub_reason=reason,
        field=field,
    )


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = nesting.loads(response.content)
    except (ValueError, TooDeep):
        return {}
    return body if isinstance(body, dict) else {}
