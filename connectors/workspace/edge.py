"""The workspace's HTTP edge, shared by its pages (the werkbak in `app`, the register, notices
and studio pages): who is asking (the session's account, or the one the reverse proxy vouches
for), forms with their CSRF check, redirects, the page renderer, and the edge's signals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from connectors import accounts
from connectors.accounts import Account
from connectors.client import ConnectorError
from connectors.services import ConnectorServices
from connectors.store import LocalStore
from connectors.workspace.i18n import CATALOGUE
from connectors.workspace.identity import ProxyIdentity
from schemas.errors import ContractError
from webui.pages import Renderer, base_path
from webui.sessions import check_csrf, session_of

__all__ = [
    "MAX_FORM",
    "ActingAccount",
    "AlreadyAnswered",
    "CsrfRefused",
    "CurrentAccount",
    "Forbidden",
    "NotLoggedIn",
    "UnknownProxyUser",
    "account_of",
    "connector_of",
    "pages",
    "read_form",
    "redirect_to",
    "services_of",
    "store_of",
]

MAX_FORM = 8192
pages = Renderer(Path(__file__).parent / "templates", CATALOGUE)


# Signals of this HTTP edge (like Starlette's HTTPException), not domain errors.
class NotLoggedIn(Exception):
    pass


class CsrfRefused(Exception):
    pass


class Forbidden(Exception):
    pass


class UnknownProxyUser(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


class AlreadyAnswered(Exception):
    def __init__(self, state: str) -> None:
        self.state = state


def services_of(request: Request) -> ConnectorServices:
    services: ConnectorServices = request.app.state.services
    return services


def store_of(request: Request) -> LocalStore:
    store = services_of(request).store
    assert store is not None
    return store


async def account_of(request: Request) -> Account:
    proxy: ProxyIdentity | None = request.app.state.proxy
    vouched = proxy.user(request) if proxy is not None else None
    if vouched is not None:  # the municipality's single sign-on, through its reverse proxy
        account = await accounts.get(store_of(request), vouched)
        if account is None:
            raise UnknownProxyUser(vouched)
        return account
    name = session_of(request).user
    account = await accounts.get(store_of(request), name) if name else None
    if account is None:
        raise NotLoggedIn
    return account


async def _acting(account: Annotated[Account, Depends(account_of)]) -> Account:
    if not account.may_act:
        raise Forbidden
    return account


CurrentAccount = Annotated[Account, Depends(account_of)]
ActingAccount = Annotated[Account, Depends(_acting)]


async def read_form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM:
        raise ContractError("form too large")
    try:
        fields = dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=20))
    except ValueError:
        raise ContractError("too many form fields") from None
    if not check_csrf(request, fields):
        raise CsrfRefused
    return fields


def redirect_to(request: Request, to: str, **query: str) -> RedirectResponse:
    return RedirectResponse(base_path(request) + to + (f"?{urlencode(query)}" if query else ""), 303)


def connector_of(services: ConnectorServices) -> Any:
    if services.connector is None:
        raise ConnectorError("the workspace has no connection to the broker")
    return services.connector
