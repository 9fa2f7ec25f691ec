"""One event the case system refuses for good no longer blocks the outbox: after `park_after`
refusals (4xx other than 408/429) it is parked with an alert, the rest flows on, the later
events of its subject wait behind it, and `inbeeld-connector outbox list|retry|drop` lets an
operator see, retry or give it up. A real HTTP receiver (`tests.utils.webhook`), the real
local store and outbox worker; the last test runs it all through the hub and the runtime."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from structlog.testing import capture_logs
from typer.testing import CliRunner

from connectors import Connector
from connectors.cli import app
from connectors.config import ConnectorConfig, WebhookSinkConfig, load_config
from connectors.outbox import entries
from connectors.sinks import OutboxWorker, WebhookSink
from connectors.store import LocalStore
from schemas.envelope import CloudEvent
from tests.connectors.test_runtime import Running, make_config, webhook_sink
from tests.utils.hubs import RunningHub
from tests.utils.webhook import Webhook

PING = "nl.leerplicht.ping"
SECRET = b"test-webhook-secret"
SINK = "case-system"
TENANT = "GM0957"


async def until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def drained(store: LocalStore, timeout: float = 10.0) -> None:
    """Until the outbox has nothing left (the receiver answering 200 comes just before the
    worker records the delivery)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while left := await entries(store, "all"):
        if loop.time() > end:
            raise TimeoutError(f"outbox not drained: {left}")
        await asyncio.sleep(0.05)


def text_of(body: dict[str, Any]) -> str:
    return str(body.get("data", {}).get("text", ""))


def refusing(texts: set[str], status: int = 422) -> Callable[[dict[str, Any]], int | None]:
    return lambda body: status if text_of(body) in texts else None


def tried(hook: Webhook, text: str) -> list[int]:
    """The statuses the receiver answered for the event with this text, in order."""
    with hook.lock:
        return [d.status for d in hook.requests if text_of(d.body) == text]


def delivered_order(hook: Webhook) -> list[str]:
    return [text_of(d.body) for d in hook.accepted()]


@pytest.fixture
def hook() -> Iterator[Webhook]:
    running = Webhook(SECRET).start()
    yield running
    running.stop()


@pytest.fixture
def config_file(tmp_path: Path, hook: Webhook) -> Path:
    path = tmp_path / "connector.toml"
    path.write_text(
        f'tenant = "{TENANT}"\n'
        '[broker]\nurl = "amqp://127.0.0.1:5672/unused"\nusername = "u"\npassword = "p"\n'
        '[store]\npath = "connector.db"\n'
        f'[[sinks]]\nkind = "webhook"\nname = "{SINK}"\nurl = "{hook.url}"\nsecret = "{SECRET.decode()}"\n'
        "initial_backoff_seconds = 0.05\nmax_backoff_seconds = 0.3\ntimeout_seconds = 5\n"
    )
    return path


@pytest.fixture
def config(config_file: Path) -> ConnectorConfig:
    return load_config(config_file)


@pytest.fixture
async def store(config: ConnectorConfig) -> AsyncIterator[LocalStore]:
    opened = await LocalStore.open(config.store.path)
    yield opened
    await opened.close()


class Worker:
    """The outbox worker of the configured webhook sink, running in a task."""

    def __init__(self, store: LocalStore, config: ConnectorConfig) -> None:
        sink_config = config.sinks[0]
        assert isinstance(sink_config, WebhookSinkConfig)
        self.sink = WebhookSink(SINK, sink_config, SECRET)
        self.worker = OutboxWorker(store, self.sink, tenant=TENANT)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> OutboxWorker:
        self.task = asyncio.create_task(self.worker.run())
        return self.worker

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.sink.close()


async def queue(store: LocalStore, text: str, subject: str | None) -> CloudEvent:
    """An event as the runtime queues it for the webhook (after its flow, before the ack)."""
    event = CloudEvent(
        source=f"urn:nld:cbs:GM0307:systeem:{uuid.uuid4().hex[:6]}",
        type=PING,
        recipients=[TENANT],
        subject=subject,
        data={"text": text},
    )
    body = json.dumps(event.model_dump(mode="json", exclude_none=True), sort_keys=True).encode()
    await store.accept(event, [(SINK, body)])
    return event


async def cli(*args: str) -> Result:
    # In a thread: the command runs its own event loop, as it does beside a running connector.
    return await asyncio.to_thread(CliRunner().invoke, app, ["outbox", *args])


async def item_id(store: LocalStore, event: CloudEvent) -> int:
    [entry] = [e for e in await entries(store, "all") if e.event_id == event.id]
    return entry.id


async def test_a_refused_event_is_parked_the_rest_flows_and_its_subject_waits(
    store: LocalStore, config: ConnectorConfig, config_file: Path, hook: Webhook
) -> None:
    hook.answer = refusing({"step-1"})
    step1 = await queue(store, "step-1", "tr-0001")
    await queue(store, "other", "tr-0002")
    step2 = await queue(store, "step-2", "tr-0001")  # the same transfer: must wait for step 1
    await queue(store, "loose", None)
    with capture_logs() as logs:
        async with Worker(store, config) as worker:
            await until(lambda: worker.parked == 1, what="the refused event parked")
            await until(lambda: {"other", "loose"} <= set(delivered_order(hook)), what="the others delivered")
            await asyncio.sleep(0.8)  # several backoffs: nothing more may happen to step 1 or 2
            assert tried(hook, "step-1") == [422, 422, 422]  # park_after defaults to 3
            assert tried(hook, "step-2") == []

            listing = await cli("list", "--config", str(config_file))
            assert listing.exit_code == 0, listing.output
            lines = {line.split()[1]: line for line in listing.output.splitlines() if line.startswith(" ")}
            parked_id = await item_id(store, step1)
            assert lines["parked"].split()[0] == str(parked_id)
            assert step1.id in lines["parked"] and "HTTP 422 Unprocessable Entity" in lines["parked"]
            assert "holds 1" in lines["parked"]
            assert step2.id in lines["held"] and f"waits for item {parked_id}" in lines["held"]
            assert "1 parked" in listing.output and "1 held" in listing.output
            assert "step-1" not in listing.output  # metadata only, never a body
            parked = await cli("list", "--state", "parked", "--json", "--config", str(config_file))
            [row] = [json.loads(line) for line in parked.output.splitlines()]
            assert row["event_id"] == step1.id and row["last_status"] == 422 and row["subject"] == "tr-0001"

            hook.answer = None  # the case system is fixed
            retried = await cli("retry", str(parked_id), "--config", str(config_file))
            assert retried.exit_code == 0 and f"item {parked_id}" in retried.output, retried.output
            # A running worker sees the other process's retry on its own, within seconds.
            await until(lambda: "step-2" in delivered_order(hook), what="step 1 and then step 2")
            order = delivered_order(hook)
            assert order.index("step-1") < order.index("step-2")
            await drained(store)
            assert worker.parked == 1 and worker.delivered == 4
    alerts = [e for e in logs if e["event"] == "outbox.parked"]
    assert len(alerts) == 1 and alerts[0]["log_level"] == "warning"
    assert {k: alerts[0][k] for k in ("tenant", "sink", "event_id", "type", "subject", "status")} == {
        "tenant": TENANT,
        "sink": SINK,
        "event_id": step1.id,
        "type": PING,
        "subject": "tr-0001",
        "status": 422,
    }
    assert "step-1" not in repr(alerts[0])  # never the body
    [retry_audit] = [e for e in logs if e["event"] == "outbox.retried"]
    assert retry_audit["event_id"] == step1.id and retry_audit["was"] == "parked"
    assert sorted(delivered_order(hook)) == ["loose", "other", "step-1", "step-2"]


async def test_dropping_a_parked_event_releases_the_ones_it_held(
    store: LocalStore, config: ConnectorConfig, config_file: Path, hook: Webhook
) -> None:
    hook.answer = refusing({"wrong"})
    wrong = await queue(store, "wrong", "tr-0009")
    after = await queue(store, "after", "tr-0009")
    async with Worker(store, config) as worker:
        await until(lambda: worker.parked == 1, what="parked")
        wrong_id, after_id = await item_id(store, wrong), await item_id(store, after)

        refused = await cli("retry", str(after_id), "--config", str(config_file))
        assert refused.exit_code == 1 and f"item {after_id} is held" in refused.output, refused.output
        unknown = await cli("drop", "999999", "--reason", "x", "--config", str(config_file))
        assert unknown.exit_code == 1 and "no outbox item 999999" in unknown.output, unknown.output
        assert (await cli("retry", "--config", str(config_file))).exit_code == 2  # neither id nor --all
        assert (
            await cli("drop", str(wrong_id), "--reason", " ", "--config", str(config_file))
        ).exit_code == 2

        with capture_logs() as logs:
            dropped = await cli("drop", str(wrong_id), "--reason", "sent twice", "--config", str(config_file))
        assert dropped.exit_code == 0, dropped.output
        assert "dropped; 1 held item(s) released" in dropped.output
        await until(lambda: "after" in delivered_order(hook), what="the held event released")
        assert tried(hook, "wrong") == [422, 422, 422]  # dropped, never sent again

        again = await cli("drop", str(wrong_id), "--reason", "again", "--config", str(config_file))
        assert again.exit_code == 1 and "is dropped" in again.output, again.output
    [audit] = [e for e in logs if e["event"] == "outbox.dropped"]
    assert audit["event_id"] == wrong.id and audit["reason"] == "sent twice" and audit["released"] == 1
    assert audit["tenant"] == TENANT and audit["subject"] == "tr-0009"
    [kept] = await entries(store, "dropped")
    assert kept.id == wrong_id and kept.reason == "sent twice"
    listing = await cli("list", "--state", "dropped", "--config", str(config_file))
    assert "dropped: sent twice" in listing.output


async def test_retry_all_queues_every_parked_item(
    store: LocalStore, config: ConnectorConfig, config_file: Path, hook: Webhook
) -> None:
    hook.answer = refusing({"a", "b"})
    await queue(store, "a", "tr-0101")
    await queue(store, "b", None)
    async with Worker(store, config) as worker:
        await until(lambda: worker.parked == 2, what="both parked")
        assert len(await entries(store, "parked")) == 2
        hook.answer = None
        result = await cli("retry", "--all", "--config", str(config_file))
        assert result.exit_code == 0 and "2 item(s) queued again" in result.output, result.output
        await until(lambda: {"a", "b"} <= set(delivered_order(hook)), what="both delivered")
        await drained(store)


async def test_a_given_up_event_is_listed_and_retried_with_a_fresh_retry_period(
    store: LocalStore, config_file: Path, hook: Webhook
) -> None:
    with config_file.open("a") as f:
        f.write("retry_days = 0.00002\n")  # under two seconds
    config = load_config(config_file)
    hook.down = True
    late = await queue(store, "late", "tr-0300")
    async with Worker(store, config) as worker:
        await until(lambda: len(tried(hook, "late")) >= 2, what="attempts")
        for _ in range(100):
            if await entries(store, "given_up"):
                break
            await asyncio.sleep(0.05)
        [gone] = await entries(store, "given_up")
        assert gone.event_id == late.id and gone.last_status == 503 and worker.parked == 0
        listing = await cli("list", "--state", "given_up", "--config", str(config_file))
        assert "given_up" in listing.output and "last HTTP 503" in listing.output, listing.output
        hook.down = False
        result = await cli("retry", str(gone.id), "--config", str(config_file))
        assert result.exit_code == 0, result.output
        # Queued two seconds ago, but retried just now: delivered, not given up at once again.
        await until(lambda: "late" in delivered_order(hook), what="the retried event delivered")
        await drained(store)
    assert tried(hook, "late")[-1] == 200


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_timeouts_rate_limits_and_server_errors_are_retried_not_parked(
    store: LocalStore, config: ConnectorConfig, hook: Webhook, status: int
) -> None:
    answers = iter([status] * 5)  # more than park_after
    hook.answer = lambda body: next(answers, None) if text_of(body) == "first" else None
    await queue(store, "first", "tr-0200")
    await queue(store, "second", "tr-0201")  # another subject, but behind a passing outage
    with capture_logs() as logs:
        async with Worker(store, config) as worker:
            await until(lambda: "second" in delivered_order(hook), what="both delivered")
    assert tried(hook, "first") == [status] * 5 + [200]
    assert delivered_order(hook) == ["first", "second"]  # in order, as before parking existed
    assert worker.parked == 0 and not [e for e in logs if e["event"] == "outbox.parked"]


@pytest.mark.broker
async def test_the_runtime_parks_counts_and_alerts_through_the_hub(
    hub: RunningHub, tmp_path: Path, hook: Webhook
) -> None:
    marker = uuid.uuid4().hex[:8]
    transfer = f"tr-{marker}"
    hook.answer = lambda body: 422 if text_of(body) == f"{marker}-refused" else None
    config = make_config(tmp_path, hub, TENANT, sinks=[webhook_sink(hook, park_after=2)])
    sender = Connector("GM0307", hub.tenant_url("GM0307"), system="test-runtime")
    await sender.connect()
    try:
        with capture_logs() as logs:
            async with Running(config) as runtime:
                await sender.send(PING, {"text": f"{marker}-refused"}, [TENANT], subject=transfer)
                await sender.send(PING, {"text": f"{marker}-free"}, [TENANT], subject=f"{transfer}-x")
                await sender.send(PING, {"text": f"{marker}-waits"}, [TENANT], subject=transfer)
                await until(lambda: runtime.parked == 1, what="parked")
                await until(lambda: f"{marker}-free" in delivered_order(hook), what="the free one")
                await asyncio.sleep(0.5)
                assert tried(hook, f"{marker}-refused") == [422, 422]  # park_after = 2
                assert tried(hook, f"{marker}-waits") == []
                assert runtime.store is not None
                held = await entries(runtime.store, "held")
                assert [e.subject for e in held] == [transfer]
    finally:
        await sender.close()
    [alert] = [e for e in logs if e["event"] == "outbox.parked"]
    assert alert["tenant"] == TENANT and alert["subject"] == transfer and alert["held"] == 1
    [stopped] = [e for e in logs if e["event"] == "runtime.stopped"]
    assert stopped["parked"] == 1
