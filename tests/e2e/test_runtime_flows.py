"""`inbeeld-connector run` as a tenant's whole process, for every flow, on the real hub, broker
and hub HTTP API (served by uvicorn on a local port, so the runtimes register their keys and
look up their peers' keys over HTTP exactly as in production).

Two tenants of this module only play Den Haag (asker, offerer) and Rotterdam (finder,
receiver), in a group of their own, so no other module's inbox is touched. Rotterdam runs as a
separate OS process (`python -m connectors.cli run`) with a register imported by the real
`register import` command; Den Haag runs in-process so the test can look into its store.

- a notice sent with `inbeeld-connector notice send` is answered by Rotterdam's runtime from
  its register, and Den Haag's runtime records the answer and delivers pupil_found to its
  webhook once; the group key never reaches a webhook;
- a transfer.offered dropped as a JSON file in Den Haag's folder is sealed by its runtime and
  reaches Rotterdam's webhook opened and validated, once; an envelope whose subject is not the
  payload's transfer id is refused by Rotterdam's runtime (a log line, nothing delivered);
- a file the hub refuses comes back as hub.rejected, kept in Den Haag's store and delivered
  to its webhook, and the file moves from sent/ to failed/ with the hub's reason;
- a command whose event the hub refuses (a transfer step out of turn, a notice open too long,
  a template version published again with other content) prints the reason and exits 1; the
  notice is marked refused, by the command or (with --no-wait) by the running connector;
- a tenant asks the verdict on its own events only; `templates follow|unfollow|following`,
  and `templates publish` says how many subscribers it reached, warning at none.
Nothing personal appears in Rotterdam's log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from connectors.config import ConfigError, load_config, parse_config
from connectors.letters import shared_bundle_dir
from connectors.runtime import Runtime
from connectors.transfers import new_transfer_id
from hub import provisioning, registry
from hub.api.app import create_app
from hub.services import amqp_channel, management
from hub.store.models import LedgerEvent
from tests.utils.hubs import RunningHub
from tests.utils.webhook import Delivery, Webhook

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ASKER, FINDER = "GM8518", "GM8599"  # this module's "Den Haag" and "Rotterdam"
GROUP = "flows-zuid-holland"
SECRET = "flows-webhook-secret"
PREFIX = "nl.leerplicht."
BSN = "111222333"
HEADER = (
    "bsn,given_names,family_name,birth_date,street,house_number,postcode,city,municipality,"
    "school_brin,school_name,school_level\n"
)
ROW = (
    f"{BSN},Sanne,Voorbeeld,2014-05-17,Proefstraat,1,3011 AA,Rotterdam,GM0599,"
    "12AB,Basisschool De Proeftuin,po\n"
)
DOSSIER = json.loads((Path(__file__).parents[1] / "data" / "dossier.example.json").read_text("utf-8"))
SECRETS = (BSN, "Voorbeeld", "Sanne", "Proefstraat", "Testkade")  # never in a log


# -- the parties ------------------------------------------------------------------------------


async def _ensure_pair(hub: RunningHub) -> None:
    """Register and provision this module's two tenants and their group, once per hub."""
    if FINDER in hub.creds:
        return
    async with management(hub.settings) as mgmt, amqp_channel(hub.settings) as channel:
        async with hub.db.session() as s, s.begin():
            await registry.add_tenant(s, ASKER, "Den Haag (runtime flows test)", "municipality")
            await registry.add_tenant(s, FINDER, "Rotterdam (runtime flows test)", "municipality")
            await registry.add_group(s, GROUP, [ASKER, FINDER], "the runtime flows test's neighbours")
            for code in (ASKER, FINDER):
                hub.creds[code] = await provisioning.provision_tenant(s, mgmt, channel, hub.settings, code)


class _Api(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # pytest owns the signals

    @property
    def url(self) -> str:
        port = self.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


async def _serve_api(hub: RunningHub) -> tuple[_Api, asyncio.Task[None]]:
    app = create_app(hub.settings, hub.db)
    server = _Api(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return server, task


def _broker(url: str) -> str:
    parts = urlsplit(url)
    plain = urlunsplit((parts.scheme, f"{parts.hostname}:{parts.port or 5672}", parts.path, "", ""))
    return (
        f'url = "{plain}"\nusername = "{unquote(parts.username or "")}"\n'
        f'password = "{unquote(parts.password or "")}"\nheartbeat = 5\n'
    )


def _config(hub: RunningHub, code: str, api_url: str, hook: Webhook, contact: str, outgoing: bool) -> str:
    text = f"""
tenant = "{code}"
system = "flows"

[broker]
{_broker(hub.tenant_url(code))}
[hub]
url = "{api_url}"
token_env = "FLOWS_TOKEN_{code}"

[keystore]
path = "keystore.json"
kek_env = "FLOWS_KEK_{code}"

[store]
path = "connector.db"

[[sinks]]
kind = "webhook"
name = "case-system"
url = "{hook.url}"
secret = "{SECRET}"
initial_backoff_seconds = 0.05
max_backoff_seconds = 0.5

[notices]
name = "{contact}"
department = "Leerplicht"
phone = "010 267 1234"
email = "leerplicht@{code.lower()}.example"
auto_answer = true
check_seconds = 2
"""
    if outgoing:
        text += '\n[[sources]]\nkind = "folder"\npath = "outgoing"\npoll_seconds = 0.1\n'
    return text


@dataclass
class World:
    hub: RunningHub
    env: dict[str, str]
    den_haag: Runtime  # in-process
    den_haag_dir: Path
    rotterdam_dir: Path
    rotterdam_log: Path
    asker_hook: Webhook
    finder_hook: Webhook
    api_url: str = ""

    async def cli(self, code: str, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        """`inbeeld-connector ARGS -c <CODE's config>` as its own process."""
        folder = self.den_haag_dir if code == ASKER else self.rotterdam_dir
        wide = {**self.env, "COLUMNS": "250"}  # a table's ids on one line
        return await _cli(wide, *args, "-c", str(folder / "connector.toml"), stdin=stdin)

    def drop(self, name: str, doc: dict[str, Any]) -> None:
        """Write a JSON document into Den Haag's outgoing folder, atomically."""
        outgoing = self.den_haag_dir / "outgoing"
        tmp = outgoing / f".{name}.tmp"
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        tmp.rename(outgoing / name)

    def rotterdam_log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.rotterdam_log.read_text("utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


async def _cli(
    env: dict[str, str], *args: str, timeout: float = 60, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run `inbeeld-connector ARGS` as its own process (without blocking the hub API)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        *args,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin or b""), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def world(hub: RunningHub, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    await _ensure_pair(hub)
    api, api_task = await _serve_api(hub)
    root = tmp_path_factory.mktemp("flows")
    env = dict(os.environ)
    for code in (ASKER, FINDER):
        env[f"FLOWS_TOKEN_{code}"] = await hub.token("tenant", code)
        env[f"FLOWS_KEK_{code}"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    asker_hook, finder_hook = Webhook(SECRET.encode()).start(), Webhook(SECRET.encode()).start()
    dh_dir, rd_dir = root / "denhaag", root / "rotterdam"
    for d in (dh_dir, rd_dir):
        d.mkdir()
    (dh_dir / "connector.toml").write_text(
        _config(hub, ASKER, api.url, asker_hook, "Team Leerplicht Den Haag", outgoing=True)
    )
    (rd_dir / "connector.toml").write_text(
        _config(hub, FINDER, api.url, finder_hook, "Team Leerplicht Rotterdam", outgoing=False)
    )
    (rd_dir / "pupils.csv").write_text(HEADER + ROW, encoding="utf-8")

    # Rotterdam: the register through the real command, then the runtime as its own process.
    code, out, err = await _cli(
        env, "register", "import", str(rd_dir / "pupils.csv"), "-c", str(rd_dir / "connector.toml")
    )
    assert code == 0, out + err
    log_path = rd_dir / "runtime.log"
    log_file = log_path.open("wb")
    rotterdam = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connectors.cli",
        "run",
        "-c",
        str(rd_dir / "connector.toml"),
        "--log-format",
        "json",
        env=env,
        stdout=log_file,
        stderr=log_file,
    )

    # Den Haag: in this process, configured from its file and environment like the CLI does.
    saved = {k: os.environ.get(k) for k in (f"FLOWS_TOKEN_{ASKER}", f"FLOWS_KEK_{ASKER}")}
    os.environ.update({k: env[k] for k in saved})
    den_haag = Runtime(load_config(dh_dir / "connector.toml"), reconnect_max=1.0)
    dh_task = asyncio.create_task(den_haag.run())
    w = World(hub, env, den_haag, dh_dir, rd_dir, log_path, asker_hook, finder_hook, api.url)
    try:
        await until(lambda: den_haag.ready.is_set() or dh_task.done(), what="Den Haag's runtime")
        if dh_task.done():
            dh_task.result()

        def rotterdam_started() -> bool:
            if rotterdam.returncode is not None:
                raise AssertionError(f"Rotterdam's runtime exited: {log_path.read_text()}")
            return any(x.get("event") == "runtime.started" for x in w.rotterdam_log_lines())

        await until(rotterdam_started, timeout=60, what="Rotterdam's runtime")
        [started] = [x for x in w.rotterdam_log_lines() if x.get("event") == "runtime.started"]
        assert started["keys_registered"] and started["notices"] == "answer", started
        assert den_haag.keys_registered and den_haag.desk is not None
        yield w
    finally:
        if rotterdam.returncode is None:
            rotterdam.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(rotterdam.wait(), 20)
            except TimeoutError:
                rotterdam.kill()
                await rotterdam.wait()
        log_file.close()
        dh_task.cancel()
        await asyncio.gather(dh_task, return_exceptions=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        asker_hook.stop()
        finder_hook.stop()
        api.should_exit = True
        await asyncio.gather(api_task, return_exceptions=True)


def of_type(
    short: str, pred: Callable[[dict[str, Any]], bool] = lambda b: True
) -> Callable[[dict[str, Any]], bool]:
    return lambda body: body.get("type") == PREFIX + short and pred(body)


def once(hook: Webhook, pred: Callable[[dict[str, Any]], bool]) -> Delivery:
    found = hook.accepted_where(pred)
    assert len({d.event_id for d in found}) == 1 and len(found) == 1, [d.body.get("type") for d in found]
    assert found[0].signed
    return found[0]


# -- the flows --------------------------------------------------------------------------------


async def test_a_notice_is_answered_from_the_neighbours_register_and_recorded_once(world: World) -> None:
    code, out, err = await _cli(
        world.env,
        "notice",
        "send",
        "-c",
        str(world.den_haag_dir / "connector.toml"),
        "--group",
        GROUP,
        "--bsn-stdin",
        "--days",
        "1",
        stdin=f"{BSN}\n".encode(),
    )
    assert code == 0, out + err
    notice_id = out.strip().splitlines()[-1]
    assert notice_id.startswith("nt-")

    found = of_type("notice.pupil_found", lambda b: b["data"]["notice_id"] == notice_id)
    await until(lambda: world.asker_hook.accepted_where(found), what="pupil_found at Den Haag's webhook")
    await asyncio.sleep(1.0)  # a second delivery would have arrived by now
    body = once(world.asker_hook, found).body
    assert body["subject"] == notice_id
    assert body["source"] == f"urn:nld:cbs:{FINDER}:systeem:flows"
    assert body["data"]["contact"]["name"] == "Team Leerplicht Rotterdam"
    assert body["data"]["school"] == {"brin": "12AB", "name": "Basisschool De Proeftuin", "level": "po"}

    # Den Haag's runtime recorded who answered; Rotterdam's recorded that it answered.
    desk = world.den_haag.desk
    assert desk is not None
    notice = await desk.get(notice_id)
    assert notice is not None and notice.role == "asked" and notice.found_by == [FINDER]
    # Answered once, from the inbox or from the rescan the group key's arrival starts (the two
    # race; the claim makes one of them answer and the other report "duplicate").
    outcomes = [
        x
        for x in world.rotterdam_log_lines()
        if x.get("event") in ("runtime.notice", "runtime.notice_rescan") and x.get("notice_id") == notice_id
    ]
    assert [x["outcome"] for x in outcomes].count("answered") == 1, outcomes

    # The notice itself reached Rotterdam's system; the group key reached no system at all.
    await until(
        lambda: world.finder_hook.accepted_where(
            of_type("notice.pupil_missing", lambda b: b["data"]["notice_id"] == notice_id)
        ),
        what="pupil_missing at Rotterdam's webhook",
    )
    for hook in (world.asker_hook, world.finder_hook):
        assert not hook.accepted_where(of_type("group.key_shared"))
    log = world.rotterdam_log.read_text("utf-8", errors="replace")
    assert not [s for s in SECRETS if s in log]


async def test_a_sealed_transfer_from_the_folder_reaches_the_receivers_webhook_once(world: World) -> None:
    transfer_id = new_transfer_id(ASKER)
    dossier = {**DOSSIER, "transfer_id": transfer_id}
    world.drop(
        f"{transfer_id}.json",
        {
            "type": PREFIX + "transfer.offered",
            "recipients": [FINDER],
            "subject": transfer_id,
            "data": dossier,
        },
    )
    offered = of_type("transfer.offered", lambda b: b.get("subject") == transfer_id)
    await until(lambda: world.finder_hook.accepted_where(offered), what="transfer.offered at Rotterdam")
    await asyncio.sleep(1.0)
    body = once(world.finder_hook, offered).body
    assert body["source"] == f"urn:nld:cbs:{ASKER}:systeem:flows"
    assert body["data"]["transfer_id"] == transfer_id
    assert body["data"]["pupil"] == dossier["pupil"]  # opened with Rotterdam's own key
    assert body["data"]["guardians"][0]["family_name"] == dossier["guardians"][0]["family_name"]
    assert (world.den_haag_dir / "outgoing" / "sent" / f"{transfer_id}.json").exists()
    # The hub tracked it by its subject, from metadata only.
    async with world.hub.db.session() as s:
        [row] = (await s.scalars(select(LedgerEvent).where(LedgerEvent.subject == transfer_id))).all()
    assert row.type == PREFIX + "transfer.offered" and row.status == "routed" and row.sender == ASKER


async def test_a_transfer_whose_subject_is_not_its_payloads_id_is_refused(world: World) -> None:
    runtime = world.den_haag
    assert runtime.connector is not None
    real_id, claimed = new_transfer_id(ASKER), new_transfer_id(ASKER)
    event = runtime.connector.event(
        PREFIX + "transfer.offered", {**DOSSIER, "transfer_id": real_id}, [FINDER], subject=claimed
    )
    sent = await runtime.connector.publish(event)  # sealed by Den Haag's runtime's sealer

    def refused() -> bool:
        return any(
            x.get("event") == "runtime.refused" and x.get("event_id") == sent.id
            for x in world.rotterdam_log_lines()
        )

    await until(refused, what="Rotterdam's runtime to refuse the mismatch")
    [line] = [
        x
        for x in world.rotterdam_log_lines()
        if x.get("event_id") == sent.id and x.get("event") == "runtime.refused"
    ]
    assert line["field"] == "subject" and line["action"] == "dead-lettered"
    assert not world.finder_hook.accepted_where(lambda b: b.get("id") == sent.id)
    log = world.rotterdam_log.read_text("utf-8", errors="replace")
    assert not [s for s in SECRETS if s in log]


async def test_the_hubs_refusal_of_a_file_reaches_the_senders_system(world: World) -> None:
    event_id = f"flows-{uuid.uuid4().hex}"
    world.drop(
        f"{event_id}.json",
        {
            "id": event_id,
            "type": PREFIX + "ping",
            "recipients": ["GM0000"],  # valid locally; the hub knows no such tenant
            "data": {"text": "is anybody there"},
        },
    )
    rejected = of_type("hub.rejected", lambda b: b["data"]["event_id"] == event_id)
    await until(lambda: world.asker_hook.accepted_where(rejected), what="hub.rejected at Den Haag's webhook")
    await asyncio.sleep(0.5)
    body = once(world.asker_hook, rejected).body
    assert body["data"]["reason"] == "unknown_recipient" and body["data"]["field"] == "recipients"
    assert world.den_haag.store is not None
    [reply] = await world.den_haag.store.hub_replies(about=event_id)
    assert reply.kind == "rejected" and reply.reason == "unknown_recipient" and reply.event_id == body["id"]
    # The file the hub refused moved on from sent/ to failed/, beside the hub's reason.
    outgoing = world.den_haag_dir / "outgoing"
    await until(lambda: (outgoing / "failed" / f"{event_id}.json").exists(), what="the file in failed/")
    assert not (outgoing / "sent" / f"{event_id}.json").exists()
    why = (outgoing / "failed" / f"{event_id}.json.error.txt").read_text("utf-8")
    assert "refused by the hub: unknown_recipient" in why and "field: recipients" in why


# -- what the commands say about the hub's verdict ----------------------------------------------


async def test_a_transfer_step_the_hub_refuses_exits_non_zero_with_its_reason(
    world: World, tmp_path: Path
) -> None:
    transfer_id = new_transfer_id(ASKER)
    dossier = tmp_path / "dossier.json"
    dossier.write_text(json.dumps({**DOSSIER, "transfer_id": transfer_id}), "utf-8")
    code, out, err = await world.cli(ASKER, "transfer", "offer", "--to", FINDER, "--file", str(dossier))
    assert code == 0, out + err
    assert f"offered transfer {transfer_id} to {FINDER}" in out and "not waiting" not in out

    # Completing before Rotterdam accepted: the hub refuses, and so does the command.
    code, out, err = await world.cli(ASKER, "transfer", "complete", transfer_id, "--to", FINDER)
    assert code == 1, out + err
    assert f"transfer {transfer_id}: transfer.completed to {FINDER}: refused by the hub: " in err
    assert "invalid_transition: the transfer is offered" in err and "sent transfer.completed" not in out

    # The offer stands: nothing of the refused step changed the transfer.
    code, out, err = await world.cli(ASKER, "transfer", "show", transfer_id)
    assert code == 0 and "offered" in out, out + err


async def test_a_notice_the_hub_refuses_is_reported_and_marked_refused(world: World) -> None:
    desk = world.den_haag.desk
    assert desk is not None
    args = ("notice", "send", "--group", GROUP, "--bsn-stdin", "--days", "60")
    code, out, err = await world.cli(ASKER, *args, stdin=f"{BSN}\n".encode())
    assert code == 1, out + err
    assert "refused by the hub: schema_invalid" in err and "at most" in err, err
    [notice_id] = [w for w in err.split() if w.startswith("nt-")]
    notice = await desk.get(notice_id)
    assert notice is not None and notice.state == "refused"
    code, out, err = await world.cli(ASKER, "notice", "list")
    assert code == 0
    [row] = [line for line in out.splitlines() if notice_id in line]
    assert "refused" in row and "open" not in row
    [audited] = [a for a in await desk.audit(notice_id) if a.activity == "notice.refused"]
    assert audited.outcome == "schema_invalid"
    assert await desk.verify_audit()


async def test_no_wait_returns_once_sent_and_the_runtime_follows_the_refusal(world: World) -> None:
    desk = world.den_haag.desk
    assert desk is not None
    args = ("notice", "send", "--group", GROUP, "--bsn-stdin", "--days", "60", "--no-wait")
    code, out, err = await world.cli(ASKER, *args, stdin=f"{BSN}\n".encode())
    assert code == 0, out + err
    assert "not waiting for the hub's verdict" in out, out + err
    [notice_id] = [w for w in out.split() if w.startswith("nt-")]
    # The hub.rejected reaches Den Haag's running connector, which marks the notice refused.
    refused: list[bool] = []

    async def check() -> None:
        notice = await desk.get(notice_id)
        refused.append(notice is not None and notice.state == "refused")

    for _ in range(300):
        await check()
        if refused[-1]:
            break
        await asyncio.sleep(0.1)
    assert refused[-1], "the runtime did not mark the refused notice"


async def test_a_verdict_is_only_the_senders(world: World) -> None:
    event_id = f"flows-{uuid.uuid4().hex}"
    world.drop(
        f"{event_id}.json",
        {"id": event_id, "type": PREFIX + "ping", "recipients": [FINDER], "data": {"text": "hallo"}},
    )
    headers = {"Authorization": f"Bearer {world.env[f'FLOWS_TOKEN_{ASKER}']}"}
    other = {"Authorization": f"Bearer {world.env[f'FLOWS_TOKEN_{FINDER}']}"}
    async with httpx.AsyncClient(base_url=world.api_url) as http:
        url = f"/ledger/{event_id}/verdict"
        for _ in range(300):
            mine = (await http.get(url, headers=headers)).json()
            if mine["status"] != "pending":
                break
            await asyncio.sleep(0.1)
        assert mine == {"event_id": event_id, "status": "routed", "reason": None, "detail": None}
        # Rotterdam received it, but the verdict on it is Den Haag's alone.
        assert (await http.get(url, headers=other)).json()["status"] == "pending"
        assert (await http.get(url)).status_code == 401
        operator = {"Authorization": f"Bearer {await world.hub.token('operator')}"}
        answer = await http.get(url, headers=operator)
        assert answer.status_code == 403 and answer.headers["content-type"].startswith(
            "application/problem+json"
        )


def _bundle(tmp: Path, template_id: str, version: str, **manifest: Any) -> Path:
    folder = tmp / f"{template_id}-{version}-{uuid.uuid4().hex[:4]}"
    shutil.copytree(shared_bundle_dir() / "we-zijn-je-kwijt", folder)
    data = json.loads((folder / "manifest.json").read_text("utf-8"))
    data.update({"id": template_id, "version": version, "publisher": ASKER, **manifest})
    (folder / "manifest.json").write_text(json.dumps(data), "utf-8")
    return folder


async def test_follow_unfollow_following_and_publish_counts_its_subscribers(
    world: World, tmp_path: Path
) -> None:
    template_id = f"flows-{uuid.uuid4().hex[:10]}"
    code, out, err = await world.cli(ASKER, "templates", "following")
    assert code == 0 and "followed by: nobody" in out, out + err

    # Nobody follows Den Haag: the publication reaches no one, and the command says so.
    code, out, err = await world.cli(
        ASKER, "templates", "publish", str(_bundle(tmp_path, template_id, "1.0.0"))
    )
    assert code == 0, out + err
    assert f"published {template_id}@1.0.0 to 0 subscribers" in out
    assert "warning: nobody follows your templates" in err

    code, out, err = await world.cli(FINDER, "templates", "follow", ASKER)
    assert code == 0 and f"following {ASKER}" in out, out + err
    code, out, err = await world.cli(FINDER, "templates", "following")
    assert code == 0 and f"following: {ASKER}" in out, out + err
    code, out, err = await world.cli(ASKER, "templates", "following")
    assert code == 0 and f"followed by: {FINDER}" in out, out + err

    code, out, err = await world.cli(
        ASKER, "templates", "publish", str(_bundle(tmp_path, template_id, "1.1.0"))
    )
    assert code == 0, out + err
    assert f"published {template_id}@1.1.0 to 1 subscriber " in out and "warning" not in err

    # The same version with other content: the hub refuses it, and so does the command.
    changed = _bundle(tmp_path, template_id, "1.1.0", title="Een andere titel")
    code, out, err = await world.cli(ASKER, "templates", "publish", str(changed))
    assert code == 1, out + err
    assert f"publishing {template_id}@1.1.0: refused by the hub: invalid_transition" in err

    code, out, err = await world.cli(FINDER, "templates", "unfollow", ASKER)
    assert code == 0 and f"no longer following {ASKER}" in out and "following: nobody" in out, out + err
    code, out, err = await world.cli(FINDER, "templates", "unfollow", ASKER)
    assert code == 1 and f"you do not follow {ASKER}" in err, out + err


def test_the_flow_sections_are_optional_and_a_bad_one_names_its_field(tmp_path: Path) -> None:
    base = {
        "tenant": "GM0518",
        "broker": {"url": "amqp://127.0.0.1:5672/x", "username": "u", "password": "p"},
        "store": {"path": "c.db"},
    }
    config = parse_config(json.loads(json.dumps(base)), tmp_path)  # an existing config stays valid
    assert config.notices is None and config.letterhead is None and config.templates.accepts("anyone")
    config = parse_config(
        {**base, "notices": {"name": "Team Leerplicht"}, "templates": {"publishers": ["ingrado"]}}, tmp_path
    )
    assert config.notices is not None and config.notices.auto_answer
    assert config.templates.accepts("ingrado") and not config.templates.accepts("GM0599")
    with pytest.raises(ConfigError) as exc:
        parse_config({**base, "notices": {"name": "Team", "phone": "call me"}}, tmp_path)
    assert exc.value.field == "notices.phone"
    with pytest.raises(ConfigError) as exc:
        parse_config({**base, "letterhead": {"name": "X", "return_address": ["a"] * 7}}, tmp_path)
    assert exc.value.field == "letterhead.return_address"
