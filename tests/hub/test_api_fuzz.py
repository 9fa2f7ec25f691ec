"""The HTTP API under hostile requests, driven by its own OpenAPI document: every operation
gets a corpus of hostile path, query and body values, then hypothesis-made requests, with an
operator token, a tenant token and none. No request may be answered with a 5xx (only
/health may say 503, when a service is away) or raise out of the app.

Schemathesis does the same from the outside; this stays in-process (ASGI), needs no extra
dependency and runs on a fresh deployment of its own, per store backend, because the
requests suspend tenants, revoke tokens and create groups."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import auth
from hub.api.app import create_app
from tests.conftest import BACKENDS, RUN_ID, base_settings, make_database_url, private_hub
from tests.utils.hubs import RunningHub

pytestmark = [pytest.mark.broker, pytest.mark.slow]

OWN_TENANT = "GM0518"  # the tenant token's tenant: never suspended by the fuzzer
CORPUS_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\t\r\n",
    "../../etc/passwd",
    "%00",
    "%2e%2e%2f",
    "GM0599",
    "ingrado",
    "' OR 1=1 --",
    '"; DROP TABLE tenants; --',
    "<script>alert(1)</script>",
    "${jndi:ldap://x/a}",
    "\r\nX-Injected: 1",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\u202eevil",
    "\ufeff",
    "Ω" * 300,
    "A" * 10_000,
    "-1",
    "0",
    "1e309",
    "NaN",
    "null",
    "true",
    "{}",
    "[]",
    "00000001234567890000",
    "9" * 40,
]
CORPUS_INT = [0, -1, 1, 2**31, 2**63, 2**63 - 1, -(2**63) - 1, 10**30]
CORPUS_JSON: list[Any] = [
    None,
    True,
    0,
    -1,
    2**64,
    1e308,
    "",
    "\x00",
    [],
    {},
    [[[[[[[[]]]]]]]],
    {"": None},
    {"code": "\x00", "name": "\x00"},
    {"a" * 1000: "b"},
    json.loads("[" * 200 + "]" * 200),
]
# Text that a URL path and a JSON body can carry (no lone surrogates).
safe_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | safe_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(safe_text, inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module", params=BACKENDS)
async def fuzz_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningHub]:
    backend = request.param
    label = f"fuzz_{backend}"
    s = base_settings(
        vhost=f"inbeeld-fuzz-{RUN_ID}-{backend}",
        database_url=await make_database_url(backend, label, tmp_path_factory.mktemp("fuzz")),
    )
    async with private_hub(s, backend, label) as hub:
        yield hub


class Api:
    """The app, its OpenAPI operations and the tokens to call them with."""

    def __init__(
        self, hub: RunningHub, client: httpx.AsyncClient, tokens: dict[str, str], token_ids: set[int]
    ) -> None:
        self.hub, self.client, self.tokens, self.token_ids = hub, client, tokens, token_ids
        spec = client._transport.app.openapi()  # type: ignore[attr-defined]
        self.schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
        self.operations = [
            (method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()
        ]

    def body_properties(self, op: dict[str, Any]) -> dict[str, Any]:
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if not content:
            return {}
        ref = content["schema"].get("$ref", "")
        return self.schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})

    async def call(
        self,
        method: str,
        path: str,
        op: dict[str, Any],
        who: str,
        path_values: dict[str, Any],
        query: dict[str, Any],
        body: bytes | None,
    ) -> httpx.Response:
        url = path
        for name, value in path_values.items():
            if name == "token_id" and value in self.token_ids:
                value = -1  # keep our own tokens alive
            if name == "code" and value == OWN_TENANT:
                value = "GM0000"
            url = url.replace("{" + name + "}", quote(str(value), safe=""))
        headers = {"content-type": "application/json"}
        if who != "none":
            headers["authorization"] = f"Bearer {self.tokens[who]}"
        response = await self.client.request(method, url, params=query, content=body, headers=headers)
        allowed_5xx = path == "/health" and response.status_code == 503
        assert response.status_code < 500 or allowed_5xx, (
            f"{method} {url} as {who} -> {response.status_code}: {response.text[:300]}"
        )
        return response


@pytest.fixture(scope="module")
async def api(fuzz_hub: RunningHub) -> AsyncIterator[Api]:
    async with fuzz_hub.db.session() as s, s.begin():
        op_id, operator = await auth.issue(s, "operator", None, "fuzz")
        tenant_id, tenant = await auth.issue(s, "tenant", OWN_TENANT, "fuzz")
    app = create_app(fuzz_hub.settings, fuzz_hub.db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        yield Api(fuzz_hub, client, {"operator": operator, "tenant": tenant}, {op_id, tenant_id})


def _param_values(param: dict[str, Any]) -> list[Any]:
    kind = param.get("schema", {}).get("type")
    return CORPUS_INT if kind == "integer" else CORPUS_TEXT + [str(i) for i in CORPUS_INT]


async def test_hostile_corpus_on_every_operation(api: Api) -> None:
    calls = 0
    for method, path, op in api.operations:
        params = op.get("parameters", [])
        path_params = [p for p in params if p["in"] == "path"]
        query_params = [p for p in params if p["in"] == "query"]
        props = api.body_properties(op)
        for who in ("operator", "tenant", "none"):
            # Hostile values in each path parameter, then in each query parameter.
            for p in path_params:
                for value in _param_values(p):
                    others = {q["name"]: "GM0599" for q in path_params if q is not p}
                    await api.call(method, path, op, who, {p["name"]: value, **others}, {}, b"{}")
                    calls += 1
            fixed = {
                p["name"]: "GM0599" if p.get("schema", {}).get("type") != "integer" else 1
                for p in path_params
            }
            for p in query_params:
                for value in _param_values(p):
                    await api.call(method, path, op, who, fixed, {p["name"]: value}, None)
                    calls += 1
            if "requestBody" in op:
                bodies = [json.dumps(v).encode() for v in CORPUS_JSON]
                bodies += [b"", b"{", b"\x00", b"\xff\xfe", b"[" * 100_000, b'{"a": ' + b"9" * 5000 + b"}"]
                for name in props:  # every field of the body, hostile in turn
                    bodies += [json.dumps({name: v}).encode() for v in CORPUS_JSON + CORPUS_TEXT]
                for body in bodies:
                    await api.call(method, path, op, who, fixed, {}, body)
                    calls += 1
    assert calls > 1000


@st.composite
def requests(
    draw: st.DrawFn, api: Api
) -> tuple[str, str, dict[str, Any], str, dict[str, Any], dict[str, Any], bytes | None]:
    method, path, op = draw(st.sampled_from(api.operations))
    params = op.get("parameters", [])

    def value(p: dict[str, Any]) -> Any:
        if p.get("schema", {}).get("type") == "integer":
            return draw(st.integers() | st.sampled_from(CORPUS_INT))
        return draw(
            safe_text.filter(bool)
            | st.sampled_from(CORPUS_TEXT[1:])
            | st.sampled_from(["GM0518", "GM0599", "GM0307", "GM0957", "ingrado"])
        )

    path_values = {p["name"]: value(p) for p in params if p["in"] == "path"}
    query = {p["name"]: value(p) for p in params if p["in"] == "query" and draw(st.booleans())}
    body = None
    if "requestBody" in op:
        props = list(api.body_properties(op))
        shaped = st.fixed_dictionaries({}, optional={n: json_values for n in props}) if props else json_values
        body = draw(
            shaped.map(lambda v: json.dumps(v).encode())
            | json_values.map(lambda v: json.dumps(v).encode())
            | st.binary(max_size=200)
        )
    who = draw(st.sampled_from(["operator", "tenant", "none"]))
    return method, path, op, who, path_values, query, body


async def test_hypothesis_made_requests_never_get_a_5xx(api: Api) -> None:
    # Hypothesis draws the requests (its runner is synchronous), then they are sent in order.
    made: list[tuple[Any, ...]] = []

    @settings(
        max_examples=500,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(req=requests(api))
    def draw(req: tuple[Any, ...]) -> None:
        made.append(req)

    draw()
    for method, path, op, who, path_values, query, body in made:
        await api.call(method, path, op, who, path_values, query, body)
    assert len({(m, p) for m, p, *_ in made}) > len(api.operations) // 2
