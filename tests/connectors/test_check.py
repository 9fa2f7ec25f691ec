"""`inbeeld-connector check` tells the truth: it asks the hub who its token belongs to
(`GET /tenants/me`) and compares that with the configuration. Each planted mistake (a wrong
or another tenant's token, a `tenant` that is not the broker user's, a missing `oin` where the
hub has one, no keystore passphrase on a fresh install, `[notices]` without `[hub]`, a value
left at the example's) gives its own FAIL line and a non-zero exit; a correct configuration
passes. The real command, as its own process, against a hub serving its API on a local port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub import provisioning, registry
from hub.services import amqp_channel, management
from tests.utils.connector_cli import clean_env, connector_cli, connector_toml, served_api, write_config
from tests.utils.hubs import RunningHub

pytestmark = [pytest.mark.broker, pytest.mark.parametrize("hub", ["sqlite"], indirect=True)]

WITH_OIN, OIN = "GM8377", "00000001234567890377"  # this module's tenant registered with an OIN
PASSPHRASE = {"CHECK_KEYSTORE_PASSPHRASE": "a long passphrase for the check test"}
NOTICES = '[notices]\nname = "Team Leerplicht"\nemail = "leerplicht@gemeente.test"\n'


@pytest.fixture
async def api_url(hub: RunningHub) -> AsyncIterator[str]:
    async with served_api(hub) as url:
        yield url


async def _ensure_oin_tenant(hub: RunningHub) -> None:
    if WITH_OIN in hub.creds:
        return
    async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
        async with hub.db.session() as s, s.begin():
            await registry.add_tenant(s, WITH_OIN, "Gemeente met OIN (check test)", "municipality", OIN)
            hub.creds[WITH_OIN] = await provisioning.provision_tenant(
                s, mgmt, channel, hub.settings, WITH_OIN
            )


def _hub(url: str, token: str) -> str:
    return f'[hub]\nurl = "{url}"\ntoken = "{token}"\n'


def _keystore() -> str:
    return '[keystore]\npath = "keystore.json"\npassphrase_env = "CHECK_KEYSTORE_PASSPHRASE"\n'


async def _check(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    config = write_config(tmp_path, text)
    done = await connector_cli(
        "check", "-c", str(config), env=clean_env(**(env if env is not None else PASSPHRASE))
    )
    assert "Traceback" not in done.out + done.err
    return done.code, done.out.splitlines(), done.err


async def test_a_correct_configuration_passes(hub: RunningHub, api_url: str, tmp_path: Path) -> None:
    token = await hub.token("tenant", "GM0518")
    text = connector_toml(hub, "GM0518", tail=_hub(api_url, token) + _keystore() + NOTICES)
    code, lines, err = await _check(tmp_path, text)
    assert code == 0, "\n".join(lines) + err
    assert lines and all(x.startswith("pass  ") for x in lines[:-1]), lines
    assert "pass  hub token: GM0518 (" in "\n".join(lines)
    assert lines[-1].endswith("ready to run")


async def _mistake(hub: RunningHub, api_url: str, kind: str) -> tuple[str, dict[str, str], str]:
    """(config text, environment, the start of the FAIL line it must give)."""
    mine = await hub.token("tenant", "GM0518")
    good_tail = _hub(api_url, mine) + _keystore()
    vhost = hub.settings.vhost
    if kind == "another tenant's token":
        theirs = await hub.token("tenant", "GM0599")
        text = connector_toml(hub, "GM0518", tail=_hub(api_url, theirs) + _keystore())
        return text, PASSPHRASE, "FAIL  hub token: this token is GM0599's, not GM0518's"
    if kind == "a wrong token":
        text = connector_toml(hub, "GM0518", tail=_hub(api_url, "not-a-token-of-this-hub") + _keystore())
        return text, PASSPHRASE, "FAIL  hub token: the hub does not accept this token"
    if kind == "tenant not the broker user's":
        text = connector_toml(hub, "GM0599", tenant="GM0518", inbox=False, tail=good_tail)
        return (
            text,
            PASSPHRASE,
            f"FAIL  broker.username: {vhost}.GM0599 is not GM0518's broker user ({vhost}.GM0518)",
        )
    if kind == "tenant not the broker user's, no hub":
        text = connector_toml(hub, "GM0599", tenant="GM0518")
        return text, PASSPHRASE, f"FAIL  tenant: GM0518 does not match the broker user {vhost}.GM0599"
    if kind == "oin missing":
        await _ensure_oin_tenant(hub)
        text = connector_toml(hub, WITH_OIN, tail=_hub(api_url, await hub.token("tenant", WITH_OIN)))
        return text, PASSPHRASE, f'FAIL  oin: the hub registered {WITH_OIN} with OIN {OIN}: set oin = "{OIN}"'
    if kind == "no keystore passphrase":
        text = connector_toml(hub, "GM0518", tail=good_tail)
        return text, {}, "FAIL  keystore: "
    if kind == "notices without hub":
        text = connector_toml(hub, "GM0518", tail=_keystore() + NOTICES)
        return text, PASSPHRASE, "FAIL  notices: [notices] needs [hub] and [keystore]"
    assert kind == "example value"
    text = connector_toml(hub, "GM0518", tail=good_tail + NOTICES.replace("gemeente.test", "example.nl"))
    return text, PASSPHRASE, "FAIL  notices.email: still the example value leerplicht@example.nl"


@pytest.mark.parametrize(
    "kind",
    [
        "another tenant's token",
        "a wrong token",
        "tenant not the broker user's",
        "tenant not the broker user's, no hub",
        "oin missing",
        "no keystore passphrase",
        "notices without hub",
        "example value",
    ],
)
async def test_each_planted_mistake_is_its_own_line(
    hub: RunningHub, api_url: str, tmp_path: Path, kind: str
) -> None:
    text, env, expected = await _mistake(hub, api_url, kind)
    code, lines, err = await _check(tmp_path, text, env)
    failed = [x for x in lines if x.startswith("FAIL  ")]
    assert code == 1, "\n".join(lines)
    assert [x for x in failed if x.startswith(expected)], "\n".join(lines)
    if kind == "no keystore passphrase":
        assert "neither CHECK_KEYSTORE_PASSPHRASE nor INBEELD_KEYSTORE_KEK is set" in failed[0]
    problems: Any = err.strip().rsplit(": ", 1)[-1]
    assert problems == f"{len(failed)} problem{'s' if len(failed) > 1 else ''}", err
    assert "not-a-token-of-this-hub" not in "\n".join(lines) + err
