"""`inbeeld demo` plays on the vhost given by --vhost or INBEELD_VHOST, resets only a vhost an
earlier demo made (another is refused and left intact), and removes the broker users it made."""

from __future__ import annotations

from pathlib import Path

import pytest
from aio_pika import Message

from hub.config import Settings
from hub.services import amqp_channel, management
from tests.conftest import RUN_ID
from tests.test_cli import run
from tests.utils.hubs import remove_deployment

pytestmark = pytest.mark.broker


async def _users_of(vhost: str) -> list[str]:
    async with management(Settings(vhost=vhost)) as mgmt:
        return [u["name"] for u in await mgmt.list_users() if u["name"].startswith(vhost + ".")]


async def test_the_demo_plays_on_the_vhost_given_and_removes_its_users(tmp_path: Path) -> None:
    vhost = f"inbeeld-test-{RUN_ID}-demo-given"
    out = tmp_path / "demo-out"
    # First by the flag, which wins over the environment; then by INBEELD_VHOST alone, on the
    # same vhost: the second run resets the vhost the first one made.
    runs = [
        (["--vhost", vhost], {"INBEELD_VHOST": "not-this-one"}),
        ([], {"INBEELD_VHOST": vhost}),
    ]
    try:
        for extra, env in runs:
            result = run("inbeeld", "demo", "--out", str(out), *extra, env=env, timeout=300)
            assert result.returncode == 0, result.stdout + result.stderr
            assert f"hub on vhost {vhost}" in result.stdout and "demo complete" in result.stdout
            assert await _users_of(vhost) == []  # none of its broker users is left
        async with management(Settings(vhost=vhost)) as mgmt:
            assert await mgmt.vhost_exists(vhost)
            assert not await mgmt.vhost_exists("not-this-one")
    finally:
        await remove_deployment(Settings(vhost=vhost))


async def test_a_vhost_the_demo_did_not_make_is_refused_and_left_intact(tmp_path: Path) -> None:
    vhost = f"inbeeld-test-{RUN_ID}-not-the-demos"
    settings = Settings(vhost=vhost)
    marker_user = f"{vhost}.GM0518"  # what a real deployment's Den Haag would be called
    async with management(settings) as mgmt:
        await mgmt.create_vhost(vhost)
        user, _ = settings.api_credentials
        await mgmt.set_permissions(vhost, user, ".*", ".*", ".*")
        await mgmt.put_user(marker_user, "a-real-tenant-password")
    try:
        async with amqp_channel(settings) as channel:
            queue = await channel.declare_queue("someone.elses.queue", durable=True)
            await channel.default_exchange.publish(Message(b"keep me"), routing_key=queue.name)
        result = run("inbeeld", "demo", "--out", str(tmp_path / "out"), "--vhost", vhost)
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"vhost {vhost} exists and was not made by `inbeeld demo`" in result.stderr
        assert "Traceback" not in result.stderr
        async with management(settings) as mgmt:
            assert await mgmt.vhost_exists(vhost)
            assert marker_user in {u["name"] for u in await mgmt.list_users()}
        async with amqp_channel(settings) as channel:
            declared = await channel.declare_queue("someone.elses.queue", passive=True)
            assert declared.declaration_result.message_count == 1
    finally:
        await remove_deployment(settings)
