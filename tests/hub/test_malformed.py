"""1,000 malformed bodies published to the ingress: the router never stops, each one gets a
`hub.rejected` (when it carries a usable id) or a dead letter, and none reaches an inbox."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.store.models import DeadLetter
from schemas.envelope import parse_event
from schemas.errors import InbeeldError
from tests.utils.hubs import RunningHub

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SENDER = "GM0957"
VALID = {
    "specversion": "1.0",
    "source": "urn:nld:cbs:GM0957:systeem:leerplicht",
    "type": "nl.leerplicht.ping",
    "recipients": ["GM0307"],
    "data": {"text": "hi"},
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
random_object = st.dictionaries(st.text(max_size=12), json_values, max_size=6)


@st.composite
def broken_envelope(draw: st.DrawFn) -> bytes:
    """A valid envelope with one required attribute removed or replaced by junk."""
    env = dict(VALID, id=str(draw(st.uuids())))
    key = draw(st.sampled_from(["source", "type", "recipients", "specversion"]))
    if draw(st.booleans()):
        del env[key]
    else:
        env[key] = draw(json_values.filter(lambda v: v != VALID[key]))
    body = json.dumps(env).encode()
    # The junk may happen to be valid (a list holding a well-formed but unknown tenant code as
    # `recipients`): that is an event, refused for its content, not a malformed body.
    try:
        parse_event(body)
    except InbeeldError:
        return body
    assume(False)
    return body


@st.composite
def object_with_id(draw: st.DrawFn) -> bytes:
    obj = draw(random_object)
    obj["id"] = str(draw(st.uuids()))
    return json.dumps(obj).encode()


bodies = st.one_of(
    st.binary(max_size=300),
    random_object.map(lambda o: json.dumps(o).encode()),
    st.text(max_size=200).map(str.encode),
    object_with_id(),
    broken_envelope(),
)


def usable_id(body: bytes) -> str | None:
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def draw_bodies(n: int) -> list[bytes]:
    drawn: list[bytes] = []

    @settings(max_examples=2 * n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def collect(body: bytes) -> None:
        drawn.append(body)

    collect()
    seen_ids: set[str] = set()
    unique = []
    for body in dict.fromkeys(drawn):  # hypothesis may repeat an example
        i = usable_id(body)
        if i is not None:
            if i in seen_ids:
                continue
            seen_ids.add(i)
        unique.append(body)
    return unique[:n]


async def dead_letters_from(hub: RunningHub, sender: str) -> int:
    async with hub.db.session() as s:
        return int(
            await s.scalar(select(func.count()).select_from(DeadLetter).where(DeadLetter.sender == sender))
            or 0
        )


async def test_router_survives_1000_malformed_bodies(hub: RunningHub) -> None:
    batch = draw_bodies(1000)
    assert len(batch) == 1000
    expect_rejected = {i for b in batch if (i := usable_id(b))}
    expect_dead = len(batch) - len(expect_rejected)
    dead_before = await dead_letters_from(hub, SENDER)

    conn = await aio_pika.connect(hub.tenant_url(SENDER))
    channel = await conn.channel(publisher_confirms=True)
    ingress = await channel.get_exchange("inbeeld.ingress", ensure=False)
    user = hub.creds[SENDER].username
    for body in batch:
        await ingress.publish(aio_pika.Message(body, user_id=user), routing_key="nl.leerplicht.ping")
    await conn.close()

    rejected = await hub.receive(
        SENDER,
        lambda e: e.type == "nl.leerplicht.hub.rejected" and e.data["event_id"] in expect_rejected,
        count=len(expect_rejected),
        timeout=120,
    )
    assert {e.data["event_id"] for e in rejected} == expect_rejected
    assert {e.data["reason"] for e in rejected} <= {"envelope_invalid", "too_large"}
    for _ in range(300):
        if await dead_letters_from(hub, SENDER) - dead_before >= expect_dead:
            break
        await asyncio.sleep(0.2)
    assert await dead_letters_from(hub, SENDER) - dead_before == expect_dead

    # nothing reached the addressed inbox, and the router still routes
    marker = await (await hub.connector("GM0518")).send("nl.leerplicht.ping", {"text": "alive"}, ["GM0307"])
    arrived = await hub.receive("GM0307", lambda e: True, count=1, timeout=30)
    leftovers = arrived + await hub.drain("GM0307")
    assert marker.id in {e.id for e in leftovers}
    assert not [e for e in leftovers if e.id in expect_rejected]
    print(
        f"\nmalformed bodies: {len(batch)} sent, {len(expect_rejected)} rejected, "
        f"{expect_dead} dead-lettered, 0 delivered"
    )
