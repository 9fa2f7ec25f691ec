"""Group membership on the console's tenants page: each tenant's groups, a form to add it to a
group and a button to take it out of one. Both are POST forms with the session's CSRF token,
carried out through hub.operator_actions, so each change is in the audit chain under the
operator's name like every other action."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from hub import operator_actions, registry
from hub.operator_actions import Actor
from hub.registry import GROUP_NAME_PATTERN, TENANT_CODE_PATTERN
from hub.store.db import Database
from hub.web import pages
from schemas.errors import ContractError, NotFound

_GROUP = re.compile(GROUP_NAME_PATTERN)
_TENANT = re.compile(TENANT_CODE_PATTERN)
DONE = ("added", "removed", "unchanged")

Operator = Callable[[Request], str]  # the console's login check: the name, or NotLoggedIn
Form = Callable[[Request], Awaitable[dict[str, str]]]  # a form's fields, its CSRF token checked


async def context(s: AsyncSession, request: Request) -> dict[str, Any]:
    """What the tenants page shows of groups: every group with its members, each tenant's
    groups, and the notice after a change (from the redirect's query)."""
    groups = await registry.list_groups(s)
    of_tenant: dict[str, list[str]] = {}
    for name, members in groups.items():
        for code in members:
            of_tenant.setdefault(code, []).append(name)
    q = request.query_params
    done, group, tenant = q.get("membership"), q.get("group", ""), q.get("tenant", "")
    valid = done in DONE and _GROUP.fullmatch(group) and _TENANT.fullmatch(tenant)
    notice = (f"groups.{done}", {"group": group, "code": tenant}) if valid else None
    return {"groups": list(groups), "tenant_groups": of_tenant, "membership_notice": notice}


def add_routes(console: FastAPI, operator: Operator, form: Form) -> None:
    """The routes, on the console app; `operator` is its login check, `form` its form reader."""

    def back(request: Request, done: str, group: str, code: str) -> RedirectResponse:
        query = urlencode({"membership": done, "group": group, "tenant": code})
        return RedirectResponse(f"{pages.base_path(request)}/tenants?{query}#groups-{code}", status_code=303)

    def checked(group: str, code: str) -> None:
        if not _GROUP.fullmatch(group):
            raise ContractError("group: a group name", field="group")
        if not _TENANT.fullmatch(code):
            raise ContractError("tenant: a tenant code", field="tenant")

    @console.post("/memberships", response_class=HTMLResponse)
    async def add_member(request: Request) -> Response:
        name = operator(request)
        fields = await form(request)
        group, code = fields.get("group", "").strip(), fields.get("tenant", "").strip()
        checked(group, code)
        try:
            async with _db(request).session() as s, s.begin():
                added = await operator_actions.add_to_group(s, Actor.web(name), group, code)
        except NotFound as exc:  # no such group or tenant: say which
            return pages.error_page(request, 422, "error.400", message=exc.message)
        return back(request, "added" if added else "unchanged", group, code)

    @console.post("/memberships/remove", response_class=HTMLResponse)
    async def remove_member(request: Request) -> Response:
        name = operator(request)
        fields = await form(request)
        group, code = fields.get("group", "").strip(), fields.get("tenant", "").strip()
        checked(group, code)
        try:
            async with _db(request).session() as s, s.begin():
                removed = await operator_actions.remove_from_group(s, Actor.web(name), group, code)
        except NotFound as exc:  # no such group or tenant: say which
            return pages.error_page(request, 422, "error.400", message=exc.message)
        return back(request, "removed" if removed else "unchanged", group, code)


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db
