"""Issue 10, "nothing lost, nothing doubled": a stream of events from a sender connector to a
receiver connector's webhook, through the real router, while one fault at a time is injected
mid-stream. Every scenario counts at the sink (the webhook, by `X-Inbeeld-Event-Id`) and
asserts that no event is lost and none is delivered twice."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest

from tests.faults.conftest import OUTCOMES
from tests.faults.harness import (
    RECEIVER,
    SENDER,
    Connector,
    FaultDeployment,
    Outcome,
    Scenario,
    Stream,
    amqp_target,
    count,
    free_port,
)
from tests.utils.proxy import TcpProxy
from tests.utils.rabbit import rabbitmqctl, restart_app
from tests.utils.webhook import Webhook

pytestmark = [pytest.mark.faults, pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]

# Events per scenario. The serial router on PostgreSQL moves a few hundred pings a second
# here; INBEELD_FAULTS_EVENTS raises (or lowers) it.
N = int(os.environ.get("INBEELD_FAULTS_EVENTS", "2000"))


# A webhook POST the case system answered 2xx just before the receiver was SIGKILLed, and
# that the receiver had not yet marked delivered in its store, is POSTed again after the
# restart: exactly-once towards an external HTTP endpoint cannot be had without its help.
# The runtime documents this (connectors/runtime.py): the repeat carries the same
# `X-Inbeeld-Event-Id` and body, so the case system drops it. Only the receiver-kill scenario
# may show it, at most once per kill; every other scenario must show no repeat at all.
REPEATS_ALLOWED = {"receiver-killed": 2}


async def run_scenario(dep: FaultDeployment, tmp: Path, hook: Webhook, name: str, fault) -> Outcome:
    host, port = amqp_target(dep.hub)
    sender_proxy, receiver_proxy = TcpProxy(host, port), TcpProxy(host, port)
    await sender_proxy.start()
    await receiver_proxy.start()
    http_port = free_port()
    sender = Connector(dep, SENDER, tmp / "sender", sender_proxy, http_port=http_port)
    receiver = Connector(dep, RECEIVER, tmp / "receiver", receiver_proxy, webhook=hook)
    marker = f"{name}-{uuid.uuid4().hex[:6]}"
    stream = Stream(f"http://127.0.0.1:{http_port}/events", marker, N)
    sc = Scenario(dep, sender, receiver, hook, stream)
    procs = [sender.proc, receiver.proc]
    started = time.monotonic()
    try:
        # A fresh router process per scenario: one scenario's damage never spills into the next.
        dep.router.stop()
        dep.router.start()
        await dep.router_ready()
        receiver.proc.start()
        sender.proc.start()
        await asyncio.gather(receiver.ready(), sender.ready())
        started = time.monotonic()
        sending = asyncio.create_task(stream.run())
        try:
            await fault(sc)
            await asyncio.wait_for(asyncio.shield(sending), 300)
        finally:
            if not sending.done():
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
        assert len(stream.accepted) == N
        try:
            await sc.until_delivered(N, timeout=180)
        except TimeoutError:
            pass  # counted as lost below
        await asyncio.sleep(2.0)  # a doubled delivery would arrive by now
        seconds = time.monotonic() - started
        counts = count(hook, marker)
        delivered = set(counts)
        repeated = [i for i, c in counts.items() if c > 1]
        accepted = hook.accepted()
        bodies = {i: {repr(sorted(d.body.items())) for d in accepted if d.event_id == i} for i in repeated}
        allowed = REPEATS_ALLOWED.get(name, 0)
        outcome = Outcome(
            name,
            sent=len(stream.accepted),
            delivered=len(delivered & stream.accepted),
            lost=len(stream.accepted - delivered),
            duplicated=sum(c - 1 for c in counts.values()),
            seconds=seconds,
            note=(
                f"{len(repeated)} in-flight POST(s) repeated after SIGKILL, same X-Inbeeld-Event-Id and body"
                if repeated and len(repeated) <= allowed
                else ""
            ),
            extra={"unexpected": len(delivered - stream.accepted), "posts": stream.attempts},
        )
        OUTCOMES.append(outcome)
        print(outcome.line(), outcome.extra)
        detail = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in [dep.router, *procs])
        missing = sorted(stream.accepted - delivered)[:5]
        assert outcome.lost == 0, f"{outcome.line()}; e.g. {missing}\n{detail}"
        assert outcome.duplicated <= allowed, f"{outcome.line()}; {counts.most_common(3)}\n{detail}"
        assert all(c <= 2 for c in counts.values()), counts.most_common(3)
        assert all(len(b) == 1 for b in bodies.values()), "a repeated POST differs from the first"
        assert outcome.extra["unexpected"] == 0
        return outcome
    finally:
        for p in procs:
            p.stop()
        await sender_proxy.close()
        await receiver_proxy.close()


# -- the faults, each injected once a quarter of the stream has arrived ---------------------


async def no_fault(sc: Scenario) -> None:
    return None


async def kill_router(sc: Scenario) -> None:
    for share in (0.25, 0.6):
        await sc.until_delivered(int(N * share))
        sc.dep.router.kill()
        await sc.restart(sc.dep.router, pause=1.0)


async def kill_sender(sc: Scenario) -> None:
    for share in (0.25, 0.6):
        await sc.until_delivered(int(N * share))
        sc.sender.proc.kill()
        await sc.restart(sc.sender.proc, pause=1.0)


async def kill_receiver(sc: Scenario) -> None:
    for share in (0.25, 0.6):
        await sc.until_delivered(int(N * share))
        sc.receiver.proc.kill()
        await sc.restart(sc.receiver.proc, pause=1.0)


async def cut_network(sc: Scenario) -> None:
    """Both connectors lose their broker connections and cannot reconnect for 3 s."""
    for share in (0.25, 0.6):
        await sc.until_delivered(int(N * share))
        for proxy in (sc.sender.proxy, sc.receiver.proxy):
            proxy.refuse = True
            await proxy.disconnect_all()
        await asyncio.sleep(3.0)
        for proxy in (sc.sender.proxy, sc.receiver.proxy):
            proxy.refuse = False


async def restart_rabbitmq(sc: Scenario) -> None:
    await sc.until_delivered(int(N * 0.3))
    away = await restart_app(sc.dep.hub.settings, down_for=2.0)
    print(f"rabbitmq away for {away:.1f}s")


async def webhook_down(sc: Scenario) -> None:
    await sc.until_delivered(int(N * 0.25))
    sc.hook.down = True
    try:
        await asyncio.sleep(8.0)
    finally:
        sc.hook.down = False


async def database_away(sc: Scenario) -> None:
    """The router's PostgreSQL connections are cut and refused for 5 s."""
    proxy = sc.dep.pg_proxy
    await sc.until_delivered(int(N * 0.25))
    proxy.refuse = True
    try:
        await proxy.disconnect_all()
        await asyncio.sleep(5.0)
    finally:
        proxy.refuse = False


SCENARIOS = {
    "baseline": no_fault,
    "router-killed": kill_router,
    "sender-killed": kill_sender,
    "receiver-killed": kill_receiver,
    "network-cut": cut_network,
    "rabbitmq-restarted": restart_rabbitmq,
    "webhook-down": webhook_down,
    "database-away": database_away,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_nothing_lost_nothing_doubled(
    name: str,
    fault_deployment: FaultDeployment,
    tmp_path: Path,
    webhook: Webhook,
    request: pytest.FixtureRequest,
) -> None:
    if name == "rabbitmq-restarted":
        if rabbitmqctl() is None:
            pytest.skip("rabbitmqctl is not available here: cannot restart RabbitMQ")
        # Found by this test: the router's worker used to die on the closed channel after
        # `stop_app`/`start_app` (181 of 2,000 events stuck); it now drops the messages of
        # the closed channel (the broker redelivers them) and carries on.
    await run_scenario(fault_deployment, tmp_path, webhook, name, SCENARIOS[name])
