"""The API's errors are RFC 9457 problems, and its OpenAPI document says so: every error status
an operation can answer is declared with the one Problem schema under
`application/problem+json`, and the schemas accept what the hub accepts. (The whole document
is checked against the live hub by schemathesis in CI: .ci/schemathesis.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from hub.api.app import create_app
from hub.api.errors import MEDIA_TYPE, TYPE_PREFIX, Problem
from hub.store.models import Tenant
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub.settings, hub.db))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        yield client


@pytest.fixture
async def operator(hub: RunningHub) -> dict[str, str]:
    return bearer(await hub.token("operator"))


@pytest.fixture
async def tenant(hub: RunningHub) -> dict[str, str]:
    return bearer(await hub.token("tenant", "GM0518"))


def is_problem(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body = response.json()
    Problem.model_validate(body)  # the declared schema
    assert body["status"] == status and body["reason"] == reason
    assert body["type"] == TYPE_PREFIX + reason and body["title"] and body["detail"]
    return body


async def test_every_error_kind_is_a_problem(
    api: httpx.AsyncClient, operator: dict[str, str], tenant: dict[str, str]
) -> None:
    unauthenticated = await api.get("/ledger")
    is_problem(unauthenticated, 401, "unauthenticated")
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    is_problem(await api.get("/tenants", headers=tenant), 403, "forbidden")
    is_problem(await api.get(f"/ledger/{uuid.uuid4()}", headers=tenant), 404, "not_found")
    is_problem(await api.get("/no/such/route", headers=tenant), 404, "not_found")
    is_problem(await api.put("/ledger", headers=tenant), 405, "method_not_allowed")
    duplicate = await api.post(
        "/tenants", json={"code": "GM0518", "name": "Den Haag", "kind": "municipality"}, headers=operator
    )
    assert is_problem(duplicate, 409, "already_exists")["field"] == "code"
    headers = {**operator, "content-type": "application/json"}
    not_json = await api.post("/tokens", content=b"\xff{", headers=headers)
    assert not_json.status_code in (400, 422) and not_json.headers["content-type"] == MEDIA_TYPE


async def test_validation_problem_names_the_place_not_the_value(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    bsn = "111222333"
    response = await api.post(
        "/tenants", json={"code": bsn, "name": "x", "kind": "municipality"}, headers=operator
    )
    body = is_problem(response, 422, "invalid_request")
    assert body["errors"][0]["loc"] == ["body", "code"]
    assert body["detail"].startswith("body.code: ")
    assert bsn not in response.text
    response = await api.get("/ledger", params={"limit": 0}, headers=operator)
    limit = is_problem(response, 422, "invalid_request")
    assert limit["errors"][0]["loc"] == ["query", "limit"]


async def test_the_openapi_document_declares_problems_for_every_error(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "Problem" in schemas
    assert {"type", "title", "status", "detail", "reason"} <= set(schemas["Problem"]["required"])
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            responses = op["responses"]
            for status, response in responses.items():
                if int(status) >= 400 and path != "/health":
                    assert response["content"] == {
                        MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }, where
            if op.get("security"):
                assert "401" in responses, where
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in responses, where
            if "(operator)" in op.get("summary", ""):
                assert "403" in responses, where


async def test_schema_valid_requests_are_accepted(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    """What schemathesis found refused although the schema allowed it, and what it now says."""
    doc = (await api.get("/openapi.json")).json()
    tenant_in = doc["components"]["schemas"]["TenantIn"]["properties"]
    assert "pattern" in tenant_in["code"] and "pattern" in tenant_in["name"]
    # A group naming a tenant that does not exist: a reference to nothing (404), not a bad body.
    group = {"name": f"g{uuid.uuid4().hex[:8]}", "members": ["GM0518", "GM9999"]}
    response = await api.post("/groups", json=group, headers=operator)
    assert is_problem(response, 404, "unknown_tenant")["field"] == "members"
    # The operator follows no publishers itself.
    is_problem(await api.get("/subscriptions", headers=operator), 404, "not_found")
    # A token request is one of two shapes; an operator token has no tenant.
    bad = await api.post("/tokens", json={"scope": "operator", "tenant": "GM0518"}, headers=operator)
    assert is_problem(bad, 422, "invalid_request")
    body_schema = doc["paths"]["/tokens"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    token_schemas = [s["$ref"].rsplit("/", 1)[-1] for s in body_schema["oneOf"]]
    assert sorted(token_schemas) == ["OperatorTokenIn", "TenantTokenIn"]
    assert doc["components"]["schemas"]["OperatorTokenIn"]["additionalProperties"] is False


async def test_duplicate_oin_is_a_conflict(
    hub: RunningHub, api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    oin = "0000000" + uuid.uuid4().int.__str__()[:13]
    first = {"code": f"t{uuid.uuid4().hex[:8]}", "name": "Een", "kind": "association", "oin": oin}
    second = {"code": f"t{uuid.uuid4().hex[:8]}", "name": "Twee", "kind": "association", "oin": oin}
    try:
        assert (await api.post("/tenants", json=first, headers=operator)).status_code == 201
        is_problem(await api.post("/tenants", json=second, headers=operator), 409, "already_exists")
    finally:
        # the session's hub is shared: an unprovisioned tenant left behind fails `doctor`
        async with hub.db.session() as s, s.begin():
            await s.execute(delete(Tenant).where(Tenant.code.in_([first["code"], second["code"]])))


async def test_health_answers_its_declared_schema(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    responses = doc["paths"]["/health"]["get"]["responses"]
    assert set(responses) == {"200", "503"}
    health = {"$ref": "#/components/schemas/Health"}
    assert responses["503"]["content"]["application/json"]["schema"] == health
    body = (await api.get("/health")).json()
    assert set(body) == {"status", "database", "broker"}
