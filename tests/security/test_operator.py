"""Attacks on the operator's levers: locking the operator out by revoking its last token (alone,
through the CLI, or with two revocations racing each other), and a tenant token pulling the
operator's levers. Each refusal is a clear 409/403 problem (or a one-line CLI error), changes
nothing and leaves the audit chain intact.

A hub of this module's own per backend: "the last operator token" needs a store in which the
test knows every token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update
from structlog.testing import capture_logs

from hub import audit, auth
from hub.api.app import create_app
from hub.store.models import ApiToken, AuditRecord, utcnow
from tests.conftest import BACKENDS, RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=BACKENDS)
async def lone_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningHub]:
    backend = request.param
    label = f"operator_{backend}"
    settings = base_settings(
        vhost=f"inbeeld-operator-{RUN_ID}-{backend}",
        database_url=await make_database_url(backend, label, tmp_path_factory.mktemp("operator")),
    )
    async with private_hub(settings, backend, label) as hub:
        yield hub


@pytest.fixture
async def api(lone_hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(lone_hub.settings, lone_hub.db))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        yield client


@pytest.fixture
async def only_operator(lone_hub: RunningHub) -> AsyncIterator[tuple[int, str]]:
    """Exactly one working operator token: every other one is revoked first."""
    async with lone_hub.db.session() as s, s.begin():
        await s.execute(
            update(ApiToken)
            .where(ApiToken.scope == "operator", ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        token_id, token = await auth.issue(s, "operator", None, "the only one")
    yield token_id, token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def audit_state(hub: RunningHub) -> tuple[int, bool]:
    async with hub.db.session() as s:
        count = await s.scalar(select(func.count()).select_from(AuditRecord))
        return int(count or 0), (await audit.verify(s)).intact


async def working_operator_tokens(hub: RunningHub) -> int:
    async with hub.db.session() as s:
        q = select(func.count()).where(ApiToken.scope == "operator", ApiToken.revoked_at.is_(None))
        return int(await s.scalar(q) or 0)


async def test_the_last_operator_token_cannot_revoke_itself(
    lone_hub: RunningHub, api: httpx.AsyncClient, only_operator: tuple[int, str]
) -> None:
    token_id, token = only_operator
    before = await audit_state(lone_hub)
    with capture_logs() as logs:
        response = await api.delete(f"/tokens/{token_id}", headers=bearer(token))
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["reason"] == "last_operator_token" and problem["status"] == 409
    assert "last operator token" in problem["detail"]
    # still in charge, nothing recorded as done, the refusal logged without the token
    assert (await api.get("/tenants", headers=bearer(token))).status_code == 200
    assert await audit_state(lone_hub) == before
    refused = [e for e in logs if e.get("event") == "operator.refused"]
    assert [(e["reason"], e["subject"]) for e in refused] == [("last_operator_token", f"token:{token_id}")]
    assert token not in str(logs)


async def test_with_a_second_token_the_first_can_go(
    lone_hub: RunningHub, api: httpx.AsyncClient, only_operator: tuple[int, str]
) -> None:
    token_id, token = only_operator
    second = (await api.post("/tokens", json={"scope": "operator"}, headers=bearer(token))).json()
    assert (await api.delete(f"/tokens/{token_id}", headers=bearer(second["token"]))).status_code == 204
    assert (await api.get("/tenants", headers=bearer(token))).status_code == 401
    last = await api.delete(f"/tokens/{second['id']}", headers=bearer(second["token"]))
    assert last.status_code == 409 and last.json()["reason"] == "last_operator_token"
    assert await working_operator_tokens(lone_hub) == 1


async def test_two_revocations_racing_leave_one_operator_token(
    lone_hub: RunningHub, api: httpx.AsyncClient, only_operator: tuple[int, str]
) -> None:
    """Each of two operator tokens revokes the other at the same moment: one must lose, or the
    operator is locked out although each revocation alone saw another token left."""
    first_id, first = only_operator
    second = (await api.post("/tokens", json={"scope": "operator"}, headers=bearer(first))).json()
    before = await audit_state(lone_hub)
    a, b = await asyncio.gather(
        api.delete(f"/tokens/{second['id']}", headers=bearer(first)),
        api.delete(f"/tokens/{first_id}", headers=bearer(second["token"])),
    )
    statuses = sorted([a.status_code, b.status_code])
    # The loser either found its own token revoked by the winner (401) or the other one now
    # the last (409): never both 204.
    assert statuses in ([204, 401], [204, 409]), (a.text, b.text)
    assert await working_operator_tokens(lone_hub) == 1
    count, intact = await audit_state(lone_hub)
    assert intact and count == before[0] + 1


def cli(hub: RunningHub, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "INBEELD_AMQP_URL": hub.settings.amqp_url,
        "INBEELD_DATABASE_URL": hub.settings.database_url,
        "INBEELD_VHOST": hub.settings.vhost,
        "INBEELD_RABBITMQ_API_URL": hub.settings.rabbitmq_api_url,
        "INBEELD_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-c", "from hub.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent,
    )


async def test_the_cli_refuses_to_revoke_the_last_operator_token(
    lone_hub: RunningHub, api: httpx.AsyncClient, only_operator: tuple[int, str]
) -> None:
    token_id, token = only_operator
    before = await audit_state(lone_hub)
    done = await asyncio.to_thread(cli, lone_hub, "token", "revoke", str(token_id))
    assert done.returncode == 1
    assert "last operator token" in done.stderr and "Traceback" not in done.stderr
    assert token not in done.stderr + done.stdout
    assert (await api.get("/tenants", headers=bearer(token))).status_code == 200
    assert await audit_state(lone_hub) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/tenants/GM0599/suspend", None),
        ("POST", "/tenants/GM0599/reinstate", None),
        ("POST", "/tokens", {"scope": "operator"}),
        ("POST", "/tokens", {"scope": "tenant", "tenant": "GM0599"}),
        ("DELETE", "/tokens/{operator}", None),
        ("POST", "/dead-letters/1/replay", None),
    ],
)
async def test_a_tenant_token_pulls_no_operator_lever(
    lone_hub: RunningHub,
    api: httpx.AsyncClient,
    only_operator: tuple[int, str],
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    token_id, token = only_operator
    async with lone_hub.db.session() as s, s.begin():
        _, tenant = await auth.issue(s, "tenant", "GM0518")
    before = await audit_state(lone_hub)
    response = await api.request(method, path.format(operator=token_id), json=body, headers=bearer(tenant))
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM
    assert response.json()["reason"] == "forbidden"
    assert await audit_state(lone_hub) == before
    assert (await api.get("/tenants", headers=bearer(token))).status_code == 200
    tenants = {t["code"]: t["active"] for t in (await api.get("/tenants", headers=bearer(token))).json()}
    assert tenants["GM0599"]
