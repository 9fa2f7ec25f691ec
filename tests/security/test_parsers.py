"""Deeply nested input against every parser of the hub and the connector (issue 15, item 2).

A JSON or TOML document nested thousands of levels makes Python's recursive parsers raise
`RecursionError` — deep in a stack that expects clean refusals. Every edge bounds the depth
first (`schemas.nesting`): the hub API answers 422 `too_deep`; the connector's inbox rejects
such a message, even one validly signed by a real tenant, and goes on with the next; the
connector's own inputs (TOML config, template bundles, JSON files and bodies, CSV) refuse it
with a clear error. Hypothesis draws depths up to 100,000 and mixes of arrays and objects.

The router's handling of a deep body on the ingress is the router's own test (it must not
parse a body again once `parse_event` refused it as `too_deep`)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import Connector
from connectors.config import ConfigError, load_config
from connectors.letters import TemplateInvalid
from connectors.letters.bundle import BundleInvalid, load_bundle, shared_bundle_dir
from connectors.register import _rows, parse_row
from hub.api.app import create_app
from hub.services import amqp_channel
from schemas import sealed
from schemas.envelope import parse_event
from schemas.errors import InbeeldError, TooDeep
from schemas.nesting import MAX_DEPTH
from tests.connectors.letters.test_letters_hostile import HEAD, VALUES, bundle
from tests.connectors.test_hostile_inputs import _http_client
from tests.e2e.conftest import Party
from tests.utils.hubs import RunningHub

pytestmark = pytest.mark.broker

DEPTHS = st.integers(MAX_DEPTH + 1, 100_000)
KINDS = st.sampled_from(["[", "{", "[{", "{[", "[[{"])
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def nested_json(depth: int, kinds: str) -> str:
    opens = [kinds[i % len(kinds)] for i in range(depth)]
    return (
        "".join('{"k":' if c == "{" else "[" for c in opens)
        + "1"
        + "".join("}" if c == "{" else "]" for c in reversed(opens))
    )


def nested_toml(depth: int, kinds: str) -> str:
    opens = [kinds[i % len(kinds)] for i in range(depth)]
    return (
        "".join("{ k = " if c == "{" else "[" for c in opens)
        + "1"
        + "".join(" }" if c == "{" else "]" for c in reversed(opens))
    )


def drawn(strategy: st.SearchStrategy[Any]) -> list[Any]:
    """Hypothesis draws the cases (its runner is synchronous); the test then runs them."""
    out: list[Any] = []

    @SETTINGS
    @given(strategy)
    def draw(case: Any) -> None:
        out.append(case)

    draw()
    return out


# -- the hub API --------------------------------------------------------------------------------


async def test_api_refuses_deep_bodies_with_too_deep(hub: RunningHub) -> None:
    """Every operation that takes a JSON body, with every token: 422 `too_deep`, where
    FastAPI's own parser answered a bare 400 "There was an error parsing the body"."""
    app = create_app(hub.settings, hub.db)
    tokens = {"operator": await hub.token("operator"), "tenant": await hub.token("tenant", "GM0518")}
    spec = app.openapi()
    with_body = [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    assert len(with_body) >= 3
    cases = drawn(st.tuples(st.sampled_from(with_body), DEPTHS, KINDS, st.sampled_from([*tokens, "none"])))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:
        for (method, path), depth, kinds, who in cases:
            # the body is refused before routing, so path parameters need no real values
            url = path.replace("{code}", "GM0518").replace("{token_id}", "999999")
            headers = {"content-type": "application/json"}
            if who != "none":
                headers["authorization"] = f"Bearer {tokens[who]}"
            body = nested_json(depth, kinds).encode()
            response = await client.request(method, url, content=body, headers=headers)
            assert response.status_code == 422, (method, url, depth, response.text[:200])
            assert response.json()["reason"] == "too_deep"
            assert f"{depth} levels" in response.json()["detail"]
        # a shallow body still reaches the route (which refuses it for its own reasons)
        response = await client.post(
            "/tenants", json={"code": "GM9999"}, headers={"authorization": f"Bearer {tokens['operator']}"}
        )
        assert response.status_code == 422 and response.json().get("reason") != "too_deep"


# -- the connector's inbox ----------------------------------------------------------------------


async def deliver(hub: RunningHub, code: str, body: bytes) -> None:
    """Put `body` in `code`'s inbox as the hub's router would (a hostile or broken hub)."""
    async with amqp_channel(hub.settings) as channel:
        exchange = await channel.get_exchange("inbeeld.delivery", ensure=False)
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=code
        )


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def test_inbox_rejects_deep_messages_and_goes_on(hub: RunningHub, parties: dict[str, Party]) -> None:
    den_haag, rotterdam = parties["GM0518"], parties["GM0599"]
    await hub.drain("GM0599")
    deep = nested_json(5_000, "[{")
    envelope_deep = f'{{"specversion":"1.0","id":"x","data":{nested_json(100_000, "[")}}}'.encode()
    ping = den_haag.connector.event("nl.leerplicht.ping", None, ["GM0599"])
    data_deep = ping.to_bytes()[:-1] + f',"data":{deep}}}'.encode()
    attribute_deep = ping.to_bytes()[:-1] + f',"traceparent":{deep}}}'.encode()
    # validly signed by Den Haag's registered key: the JWE inside is 5,000 levels deep
    offer = den_haag.connector.event("nl.leerplicht.transfer.offered", None, ["GM0599"], subject="tr-x")
    binding = sealed.EnvelopeBinding.from_event(offer)
    signed_deep = sealed._signed(deep.encode(), sealed.CTY_JWE, binding, den_haag.keystore.signing_key())
    signed_deep_event = offer.model_copy(update={"data": signed_deep}).to_bytes()
    # ... and in a signed-only object's protected header (refused before the signature check)
    header = b64(b'{"alg":"Ed25519","x":' + deep.encode() + b"}")
    header_deep = offer.model_copy(
        update={"data": {"payload": "e30", "signatures": [{"protected": header, "signature": "AA"}]}}
    ).to_bytes()
    hostile = [envelope_deep, data_deep, attribute_deep, signed_deep_event, header_deep]
    for body in hostile:
        await deliver(hub, "GM0599", body)
    good = den_haag.connector.event("nl.leerplicht.ping", {"text": "still here"}, ["GM0599"])
    await deliver(hub, "GM0599", good.to_bytes())

    # (delivered by a "hostile hub" straight into the inbox, so no failure report: the hub
    # would rightly refuse one about events it never routed)
    inbox = Connector(
        "GM0599",
        hub.tenant_url("GM0599"),
        inbox_name=hub.inbox("GM0599"),
        system="test",
        sealer=rotterdam.sealer,
        report_failures=False,
    )
    await inbox.connect()
    try:
        got = []

        async def read() -> None:
            async for message in inbox.inbox(idle_timeout=3):
                await message.ack()
                got.append(message.event.id)
                if message.event.id == good.id:
                    return

        await asyncio.wait_for(read(), 30)
    finally:
        await inbox.close()
    assert got == [good.id]
    assert inbox.stats.rejected == len(hostile)
    assert not await hub.drain("GM0599")  # rejected, not requeued


# -- the connector's own inputs ---------------------------------------------------------------


def test_deep_toml_config_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "connector.toml"
    for depth, kinds in drawn(st.tuples(DEPTHS, KINDS)):
        path.write_text(f'tenant = "GM0518"\nextra = {nested_toml(depth, kinds)}\n', encoding="utf-8")
        with pytest.raises(ConfigError, match="nested too deeply"):
            load_config(path)


def test_deep_template_manifest_is_a_bundle_error(tmp_path: Path) -> None:
    source = shared_bundle_dir() / "we-zijn-je-kwijt"
    folder = tmp_path / "bundle"
    folder.mkdir()
    for f in source.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((source / "manifest.json").read_text("utf-8"))
    load_bundle(folder)  # the copy itself is fine
    for depth, kinds in drawn(st.tuples(st.integers(MAX_DEPTH + 1, 8_000), KINDS)):
        # under the manifest's 64 KiB limit, so depth is what refuses it
        text = json.dumps(manifest)[:-1] + f', "extra": {nested_json(depth, kinds)}}}'
        (folder / "manifest.json").write_text(text, encoding="utf-8")
        with pytest.raises(BundleInvalid) as exc:
            load_bundle(folder)
        assert "nested too deeply" in str(exc.value)


def test_deep_template_text_is_a_syntax_error_not_recursion() -> None:
    from connectors.letters import render_html

    for depth in drawn(DEPTHS.filter(lambda d: d < 20_000)):
        body = "Beste " + "((note??" * depth + "x" + "))" * depth
        with pytest.raises(TemplateInvalid):
            render_html(bundle(body), "nl", VALUES, HEAD)


async def test_http_source_refuses_deep_bodies_as_too_deep() -> None:
    client, connector = _http_client()
    async with client:
        for depth, kinds in drawn(st.tuples(DEPTHS, KINDS)):
            response = await client.post("/events", content=nested_json(depth, kinds).encode())
            assert response.status_code == 422
            assert response.json()["field"] == "(body)"
            assert "nested too deeply" in response.json()["error"]
    assert connector.published == []


def test_csv_has_no_nesting_to_recurse_on() -> None:
    """CSV cells full of brackets and quotes are text: rows or clean row errors, no recursion."""
    header = "bsn,given_names,surname_prefix,surname,birth_date\n"
    cells = st.text(alphabet='[]{}"\\,;\n(', min_size=0, max_size=400)
    for cell in drawn(st.tuples(cells, DEPTHS.filter(lambda d: d < 20_000))):
        text, depth = cell
        body = header + f'123456782,"{nested_json(depth, "[{").replace(chr(34), chr(34) * 2)}",,{text},x\n'
        fields, rows = _rows(body)
        assert fields[0] == "bsn"
        try:
            for line, record in rows:
                parse_row(line, record)
        except InbeeldError:
            pass  # a clean refusal is fine; RecursionError would escape this test


def test_parse_event_refuses_every_deep_shape_as_too_deep() -> None:
    for depth, kinds in drawn(st.tuples(DEPTHS, KINDS)):
        for body in (
            nested_json(depth, kinds),
            '{"specversion":"1.0","id":"e","data":' + nested_json(depth, kinds) + "}",
            '{"recipients":' + nested_json(depth, kinds) + ',"id":"e"}',
        ):
            with pytest.raises(TooDeep) as exc:
                parse_event(body.encode())
            assert exc.value.reason == "too_deep"


def test_the_connector_cli_refuses_deep_files_in_one_line(tmp_path: Path) -> None:
    """`transfer offer --file` and `check --config`: exit with the reason, no traceback."""
    from typer.testing import CliRunner

    from connectors.cli import app

    runner = CliRunner()
    dossier, config = tmp_path / "dossier.json", tmp_path / "connector.toml"
    for depth, kinds in drawn(st.tuples(DEPTHS, KINDS)):
        dossier.write_text(nested_json(depth, kinds), encoding="utf-8")
        config.write_text(f"tenant = 'GM0518'\nx = {nested_toml(depth, kinds)}\n", encoding="utf-8")
        offered = runner.invoke(
            app, ["transfer", "offer", "--to", "GM0599", "--file", str(dossier), "--config", str(config)]
        )
        checked = runner.invoke(app, ["check", "--config", str(config)])
        for result in (offered, checked):
            assert result.exit_code in (1, 2), result.output
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            assert "nested too deeply" in result.output
