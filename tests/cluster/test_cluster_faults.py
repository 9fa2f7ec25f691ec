"""Issue 23, "past one machine": the hub on a three-node RabbitMQ cluster loses nothing and
doubles nothing when a node goes away. A stream of ping events from a sender connector to a
receiver connector's webhook, through the real router process(es), while one node is stopped
or killed mid-stream; counted at the sink as in tests/faults (by `X-Inbeeld-Event-Id`).

Every client - the routers and both connectors - is given the cluster's node list starting
with the node the scenario takes away, so each of them is on that node when it goes and must
move to another: the router's robust connection (`FailoverConnection`) and the connector's
own reconnect loop. The quorum queues (router queue, inboxes) have a member on every node
(RabbitMQ's default initial group size is 3), so a majority stays when one node goes.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.broker.topology import ROUTER_QUEUE
from tests.cluster.conftest import OUTCOMES
from tests.faults.harness import (
    RECEIVER,
    SENDER,
    Connector,
    FaultDeployment,
    Outcome,
    Proc,
    Scenario,
    Stream,
    count,
    free_port,
)
from tests.utils.cluster import Cluster
from tests.utils.webhook import Webhook

pytestmark = [pytest.mark.cluster, pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]

# Events per scenario, paced so that the stream outlasts a node's stop (or its stop and start):
# INBEELD_CLUSTER_EVENTS and INBEELD_CLUSTER_RATE change them. Every event is written to two
# quorum queues of three members each (router queue, inbox): on a busy two-core machine the
# cluster moves a few dozen to a hundred a second: 2,000 events at 80/s take about a minute
# per scenario on a quiet one.
N = int(os.environ.get("INBEELD_CLUSTER_EVENTS", "2000"))
RATE = float(os.environ.get("INBEELD_CLUSTER_RATE", "80"))


@dataclass
class Run:
    """One scenario's cluster, the node it takes away, and the stream in flight."""

    cluster: Cluster
    target: int
    sc: Scenario

    async def at(self, share: float) -> None:
        await self.sc.until_delivered(int(N * share), timeout=240)


Fault = Callable[[Run], Awaitable[None]]
Target = Callable[[Cluster, FaultDeployment], Awaitable[int]]


async def router_leader(cluster: Cluster, dep: FaultDeployment) -> int:
    return await cluster.leader(dep.hub.settings.vhost, ROUTER_QUEUE)


async def not_router_leader(cluster: Cluster, dep: FaultDeployment) -> int:
    leader = await router_leader(cluster, dep)
    return (leader + 1) % len(cluster.nodes)


async def inbox_leader(cluster: Cluster, dep: FaultDeployment) -> int:
    return await cluster.leader(dep.hub.settings.vhost, dep.hub.inbox(RECEIVER))


PAUSES: dict[str, float] = {}  # marker -> longest time without a new delivery mid-stream


async def longest_pause(sc: Scenario) -> None:
    """How long the sink saw nothing new while events were still on their way: the time a
    node's loss stalls delivery (failover), as opposed to a slow but steady stream."""
    last_count, last_change = 0, time.monotonic()
    while True:
        await asyncio.sleep(0.5)
        now, delivered = time.monotonic(), sc.delivered()
        if delivered != last_count:
            last_count, last_change = delivered, now
        elif delivered < sc.stream.n:
            PAUSES[sc.stream.marker] = max(PAUSES.get(sc.stream.marker, 0.0), now - last_change)


async def routers_ready(
    cluster: Cluster, dep: FaultDeployment, routers: list[Proc], timeout: float = 60
) -> None:
    end = time.monotonic() + timeout
    while True:
        for p in routers:
            assert p.alive, f"{p.name} exited:\n{p.tail()}"
        q = await cluster.queue(dep.hub.settings.vhost, ROUTER_QUEUE)
        if int(q.get("consumers") or 0) >= len(routers):
            return
        if time.monotonic() > end:
            raise TimeoutError(f"routers not consuming after {timeout}s:\n{routers[0].tail()}")
        await asyncio.sleep(0.3)


async def run_cluster_scenario(
    cluster: Cluster,
    dep: FaultDeployment,
    tmp: Path,
    hook: Webhook,
    name: str,
    choose: Target,
    fault: Fault,
    routers: int = 1,
) -> Outcome:
    vhost = dep.hub.settings.vhost
    await asyncio.to_thread(cluster.restore)  # a scenario's damage never spills into the next
    for queue in (ROUTER_QUEUE, dep.hub.inbox(RECEIVER)):
        await cluster.until_members_online(vhost, queue, len(cluster.nodes))
    target = await choose(cluster, dep)
    leader_before = await router_leader(cluster, dep)
    url = cluster.amqp_url(first=target)  # every client starts on the node taken away
    procs = [dep.router] + [
        Proc(f"router-{k + 1}", dep.router.argv, dict(dep.router.env), tmp / f"router-{k + 1}.log")
        for k in range(1, routers)
    ]
    for p in procs:
        p.env["INBEELD_AMQP_URL"] = url
    http_port = free_port()
    hosts = cluster.hosts(first=target)
    sender = Connector(dep, SENDER, tmp / "sender", None, http_port=http_port, broker_hosts=hosts)
    receiver = Connector(dep, RECEIVER, tmp / "receiver", None, webhook=hook, broker_hosts=hosts)
    marker = f"cluster-{name}-{uuid.uuid4().hex[:6]}"
    stream = Stream(f"http://127.0.0.1:{http_port}/events", marker, N, rate=RATE)
    sc = Scenario(dep, sender, receiver, hook, stream)
    started = time.monotonic()
    try:
        for p in procs:
            p.stop()
            p.start()
        await routers_ready(cluster, dep, procs)
        receiver.proc.start()
        sender.proc.start()
        await asyncio.gather(receiver.ready(), sender.ready())
        started = time.monotonic()
        sending = asyncio.create_task(stream.run())
        pauses = asyncio.create_task(longest_pause(sc))
        try:
            await fault(Run(cluster, target, sc))
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
        pauses.cancel()
        await asyncio.gather(pauses, return_exceptions=True)
        counts = count(hook, marker)
        delivered = set(counts)
        leader_after = await router_leader(cluster, dep)
        outcome = Outcome(
            f"cluster-{name}",
            sent=len(stream.accepted),
            delivered=len(delivered & stream.accepted),
            lost=len(stream.accepted - delivered),
            duplicated=sum(c - 1 for c in counts.values()),
            seconds=seconds,
            note=(
                f"{'; '.join(cluster.events[-2:])}; router queue leader "
                f"node {leader_before + 1} -> node {leader_after + 1}; {len(procs)} router(s)"
            ),
            extra={
                "unexpected": len(delivered - stream.accepted),
                "posts": stream.attempts,
                "longest_pause_s": round(PAUSES.get(marker, 0.0), 1),
            },
        )
        OUTCOMES.append(outcome)
        print(outcome.line(), outcome.extra)
        detail = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in [*procs, sender.proc, receiver.proc])
        missing = sorted(stream.accepted - delivered)[:5]
        assert outcome.lost == 0, f"{outcome.line()}; e.g. {missing}\n{detail}"
        assert outcome.duplicated == 0, f"{outcome.line()}; {counts.most_common(3)}\n{detail}"
        assert outcome.extra["unexpected"] == 0
        return outcome
    finally:
        for p in [sender.proc, receiver.proc, *procs[1:]]:
            p.stop()
        await asyncio.to_thread(cluster.restore)


# -- the faults, each once a quarter of the stream has arrived --------------------------------


async def stop_node(run: Run) -> None:
    await run.at(0.25)
    await asyncio.to_thread(run.cluster.stop, run.target)


async def kill_node(run: Run) -> None:
    await run.at(0.25)
    await asyncio.to_thread(run.cluster.kill, run.target)


async def stop_and_start_node(run: Run) -> None:
    await run.at(0.2)
    await asyncio.to_thread(run.cluster.stop, run.target)
    await asyncio.sleep(2.0)
    await asyncio.to_thread(run.cluster.start, run.target)
    assert run.sc.delivered() < N, "the node came back after the stream: stream too short for this machine"


SCENARIOS: dict[str, tuple[Target, Fault, int]] = {
    "leader-node-stopped": (router_leader, stop_node, 1),
    "node-killed": (inbox_leader, kill_node, 1),
    "follower-node-stopped": (not_router_leader, stop_node, 1),
    "node-restarted-two-routers": (router_leader, stop_and_start_node, 2),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_a_node_going_away_loses_nothing(
    name: str, cluster: Cluster, cluster_deployment: FaultDeployment, tmp_path: Path, webhook: Webhook
) -> None:
    choose, fault, routers = SCENARIOS[name]
    await run_cluster_scenario(cluster, cluster_deployment, tmp_path, webhook, name, choose, fault, routers)
