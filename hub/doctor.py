"""`inbeeld doctor`: check a live deployment against its intended shape.

Reads the broker through the management API and the store, and proves isolation the only
convincing way: a temporary probe tenant tries forbidden operations over AMQP, and each must be
refused by the broker itself. The probe's user and inbox are removed afterwards, whatever
happens. Nothing else is changed; the database is not migrated."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection
from aiormq.exceptions import (
    AMQPError,
    ChannelAccessRefused,
    ChannelNotFoundEntity,
    ChannelPreconditionFailed,
)
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from hub import operator_actions, provisioning, registry
from hub.broker import capacity
from hub.broker.connection import open_connection
from hub.broker.management import Management
from hub.broker.topology import (
    DEAD,
    DELIVERY,
    DLX,
    INGRESS,
    ROUTER_QUEUE,
    declare_inbox,
    inbox_args,
    legacy_inbox_name,
    new_inbox_name,
)
from hub.config import Settings
from hub.operator_actions import Actor
from hub.services import amqp_channel, management, open_database
from hub.store.db import Database, head_revisions
from hub.tenants import TenantInfo
from schemas.errors import InbeeldError

Status = Literal["pass", "fail", "warn", "skip"]
_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}
PROBE_PREFIX = "doctor-probe-"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str = ""


def failed(checks: list[Check]) -> bool:
    return any(c.status == "fail" for c in checks)


def table(checks: list[Check]) -> Table:
    t = Table("check", "result", "detail", title="inbeeld doctor")
    for c in checks:
        t.add_row(c.name, f"[{_STYLE[c.status]}]{c.status.upper()}[/]", c.detail)
    return t


async def run_checks(settings: Settings, *, probe: bool = True) -> list[Check]:
    """Every check, in order. Raises ServiceUnavailable if the broker or the store is away."""
    checks: list[Check] = []
    async with management(settings) as mgmt:
        vhost_ok = await mgmt.vhost_exists(settings.vhost)
        if vhost_ok:
            checks.append(Check("vhost", "pass", settings.vhost))
            checks.extend(await _topology(mgmt, settings))
            checks.extend(await _guarded("queue replicas", _replicas(mgmt, settings)))
            checks.extend(await _guarded("broker file descriptors", _capacity(mgmt)))
        else:
            checks.append(Check("vhost", "fail", f"{settings.vhost} does not exist"))
        db = await open_database(settings, migrate=False)
        try:
            migrated = await _migrated(db)
            checks.append(migrated)
            if not (await db.current_revision()):
                skipped = ("tenant broker permissions", "probe", "audit chain")
                checks.extend(Check(name, "skip", "database not migrated") for name in skipped)
                return checks
            if vhost_ok:
                checks.extend(await _guarded("tenant broker permissions", _tenant_users(mgmt, settings, db)))
                if probe:
                    checks.extend(await _guarded("probe", _probe(mgmt, settings, db)))
            checks.extend(await _guarded("audit chain", _audit_chain(db)))
        finally:
            await db.close()
    checks.extend(monitoring(settings))
    return checks


def monitoring(settings: Settings) -> list[Check]:
    """What Prometheus should scrape on this deployment, and what this configuration leaves
    unscraped or open (the alert rules in deploy/prometheus/ need both the API and routers)."""
    token = "with INBEELD_METRICS_TOKEN as bearer token" if settings.metrics_token else "open"
    api = Check("scrape: hub API", "pass", f"GET /metrics ({token}): gauges and in-process router counters")
    if settings.metrics_token is None:
        api = Check(
            "scrape: hub API",
            "warn",
            "GET /metrics is open to whoever reaches the API; set INBEELD_METRICS_TOKEN off a closed network",
        )
    port = settings.router_metrics_port
    router = (
        Check(
            "scrape: routers",
            "pass",
            f"each `inbeeld router` on {settings.router_metrics_host}:{port}/metrics"
            if port
            else f"each `inbeeld router` on {settings.router_metrics_host}, a free port it logs",
        )
        if port is not None
        else Check(
            "scrape: routers",
            "warn",
            "INBEELD_ROUTER_METRICS_PORT is unset: router processes serve no metrics (router-down "
            "and routing alerts cannot fire)",
        )
    )
    return [api, router]


async def _guarded(name: str, work: Awaitable[list[Check]]) -> list[Check]:
    """A check that could not run is a failed check, not a crash of the whole report."""
    try:
        return await work
    except (InbeeldError, AMQPError, SQLAlchemyError, OSError, TimeoutError) as exc:
        return [Check(name, "fail", f"could not run: {type(exc).__name__}")]


# -- topology --------------------------------------------------------------------------------


def _quorum(delivery_limit: int) -> dict[str, Any]:
    return {"x-queue-type": "quorum", "x-delivery-limit": delivery_limit, "x-dead-letter-exchange": DLX}


async def _topology(mgmt: Management, settings: Settings) -> list[Check]:
    checks = []
    for name, kind in ((INGRESS, "topic"), (DELIVERY, "direct"), (DLX, "fanout")):
        ex = await mgmt.exchange(settings.vhost, name)
        if ex is None:
            checks.append(Check(f"exchange {name}", "fail", "missing"))
        elif ex["type"] != kind or not ex["durable"] or ex["auto_delete"] or ex["internal"]:
            checks.append(Check(f"exchange {name}", "fail", f"{ex['type']}, durable={ex['durable']}"))
        else:
            checks.append(Check(f"exchange {name}", "pass", f"{kind}, durable"))
    wanted = {
        ROUTER_QUEUE: (_quorum(settings.delivery_limit), (INGRESS, "#")),
        DEAD: ({"x-queue-type": "quorum"}, (DLX, "")),
    }
    for name, (arguments, (source, key)) in wanted.items():
        q = await mgmt.queue(settings.vhost, name)
        if q is None:
            checks.append(Check(f"queue {name}", "fail", "missing"))
            continue
        problems = [
            f"{k}={q['arguments'].get(k)!r}, want {v!r}"
            for k, v in arguments.items()
            if q["arguments"].get(k) != v
        ]
        if not q["durable"] or q["exclusive"] or q["auto_delete"]:
            problems.append("not durable or exclusive/auto-delete")
        bindings = await mgmt.queue_bindings(settings.vhost, name)
        if not any(b["source"] == source and b["routing_key"] == key for b in bindings):
            problems.append(f"not bound to {source} with {key!r}")
        detail = "; ".join(problems) or f"{q['type']}, bound to {source}"
        checks.append(Check(f"queue {name}", "fail" if problems else "pass", detail))
    return checks


REPLICAS = 3  # a quorum queue on three nodes survives the loss of one


async def _replicas(mgmt: Management, settings: Settings) -> list[Check]:
    """Where each quorum queue lives: its leader and members. On a cluster every queue should
    have a member on min(nodes, 3) nodes, all of them online; fewer, and losing a node can
    stop the queue (or lose the router's or a tenant's messages with it)."""
    nodes = sorted(n["name"] for n in await mgmt.nodes() if n.get("running", True))
    want = min(len(nodes), REPLICAS)
    queues = [q for q in await mgmt.list_queues(settings.vhost) if q.get("type") == "quorum"]
    checks = []

    def short(q: dict[str, Any]) -> list[str]:
        members, online = q.get("members") or [], q.get("online") or []
        problems = []
        if len(members) < want:
            problems.append(f"{len(members)} member(s), want {want}")
        if offline := sorted(set(members) - set(online)):
            problems.append(f"offline: {', '.join(offline)}")
        return problems

    named = {q["name"]: q for q in queues}
    for name in (ROUTER_QUEUE, DEAD):
        q = named.pop(name, None)
        if q is None:
            continue  # reported missing by the topology check
        problems = short(q)
        members = q.get("members") or []
        detail = f"leader {q.get('leader') or 'none'}; {len(members)} of {len(nodes)} node(s)"
        status: Status = "warn" if problems else "pass"
        checks.append(Check(f"replicas {name}", status, "; ".join([detail, *problems])))
    thin = {name: short(q) for name, q in named.items()}
    thin = {name: problems for name, problems in thin.items() if problems}
    if thin:
        listed = "; ".join(f"{name}: {', '.join(p)}" for name, p in sorted(thin.items())[:10])
        checks.append(Check("replicas tenant inboxes", "warn", f"{len(thin)} of {len(named)}: {listed}"))
    elif named:
        checks.append(
            Check("replicas tenant inboxes", "pass", f"{len(named)} on {want} of {len(nodes)} node(s) each")
        )
    return checks


async def _capacity(mgmt: Management) -> list[Check]:
    """Every inbox holds file descriptors; when they run out the broker accepts no connection."""
    checks = [
        Check(f"node {n.get('name')}", "warn", "not running: its queue members are offline")
        for n in await mgmt.nodes()
        if not n.get("running", True)
    ]
    for node, room in await capacity.broker_room(mgmt):
        if room.exhausted:
            status: Status = "fail"
        elif room.more_queues < max(100, room.queues):
            status = "warn"  # not room for as many tenants again: raise the limit before growing
        else:
            status = "pass"
        checks.append(Check(f"file descriptors {node}", status, room.describe()))
    return checks


# -- store -----------------------------------------------------------------------------------


async def _migrated(db: Database) -> Check:
    current, heads = await db.current_revision(), head_revisions()
    if current == heads:
        return Check("database migrated", "pass", ", ".join(heads))
    return Check(
        "database migrated", "fail", f"at {', '.join(current) or 'nothing'}, want {', '.join(heads)}"
    )


async def _audit_chain(db: Database) -> list[Check]:
    # Recorded like a verification from the console or the API: the console shows the last one.
    async with db.session() as s, s.begin():
        report = await operator_actions.verify_chain(s, Actor.cli())
    chains = len(report.chains)
    if report.intact:
        return [Check("audit chain", "pass", f"{report.records} records in {chains} chains intact")]
    broken = "; ".join(f"chain {c.key} broken at record {c.first_bad_seq}" for c in report.broken)
    return [
        Check("audit chain", "fail", f"{broken}; {chains - len(report.broken)} of {chains} chains intact")
    ]


# -- tenants ---------------------------------------------------------------------------------


async def _tenant_users(mgmt: Management, settings: Settings, db: Database) -> list[Check]:
    async with db.session() as s:
        tenants = await registry.list_tenants(s)
    problems: list[str] = []
    expected_users = {settings.api_credentials[0]}
    for t in tenants:
        if t.removed:  # `inbeeld tenant remove` deleted its user and inbox on purpose
            continue
        if t.broker_username is None:
            problems.append(f"{t.code}: not provisioned")
            continue
        expected_users.add(t.broker_username)
        if await mgmt.get_user(t.broker_username) is None:
            problems.append(f"{t.code}: broker user {t.broker_username} missing")
            continue
        perms = await mgmt.get_permissions(settings.vhost, t.broker_username)
        topic = await mgmt.get_topic_permissions(settings.vhost, t.broker_username)
        if not t.active:
            if perms is not None:
                problems.append(f"{t.code}: suspended but still has permissions")
            continue
        have = None if perms is None else {k: perms[k] for k in ("configure", "write", "read")}
        if have != provisioning.permissions_for(inbox=t.inbox or legacy_inbox_name(t.code)):
            problems.append(f"{t.code}: permissions {have}")
        have_topic = [{k: p[k] for k in ("exchange", "write", "read")} for p in topic]
        if have_topic != [provisioning.topic_permissions_for(t.code)]:
            problems.append(f"{t.code}: topic permissions {have_topic}")
    checks = [
        Check(
            "tenant broker permissions",
            "fail" if problems else "pass",
            "; ".join(problems[:10]) or f"{len(tenants)} tenants exactly as provisioned",
        )
    ]
    checks.append(await _inboxes(mgmt, settings, tenants))
    checks.append(await _limits(mgmt, settings, tenants))
    others = sorted(
        p["user"] for p in await mgmt.vhost_permissions(settings.vhost) if p["user"] not in expected_users
    )
    if others:
        checks.append(Check("other users on the vhost", "warn", ", ".join(others[:10])))
    return checks


async def _inboxes(mgmt: Management, settings: Settings, tenants: list[TenantInfo]) -> Check:
    """Every provisioned tenant has its unguessable, single-active-consumer inbox, bound to
    the delivery exchange with its code; an old-style `inbeeld.inbox.<code>` is a failure."""
    problems = []
    wanted = inbox_args(settings.delivery_limit, settings.inbox_max_length)
    for t in tenants:
        if t.broker_username is None:
            continue
        if t.inbox is None:
            problems.append(f"{t.code}: old-style inbox, run `inbeeld migrate`")
            continue
        q = await mgmt.queue(settings.vhost, t.inbox)
        if q is None:
            problems.append(f"{t.code}: inbox missing")
            continue
        off = sorted(k for k, v in wanted.items() if q["arguments"].get(k) != v)
        if off:
            problems.append(f"{t.code}: inbox arguments differ ({', '.join(off)})")
        bindings = await mgmt.queue_bindings(settings.vhost, t.inbox)
        if not any(b["source"] == DELIVERY and b["routing_key"] == t.code for b in bindings):
            problems.append(f"{t.code}: inbox not bound to {DELIVERY}")
        if await mgmt.queue(settings.vhost, legacy_inbox_name(t.code)) is not None:
            problems.append(f"{t.code}: old-style inbox still there, run `inbeeld migrate`")
    if problems:
        return Check("tenant inboxes", "fail", "; ".join(problems[:10]))
    return Check("tenant inboxes", "pass", f"unguessable names, one active consumer, bound to {DELIVERY}")


async def _limits(mgmt: Management, settings: Settings, tenants: list[TenantInfo]) -> Check:
    """Each tenant user's connection and channel limits, as `tenant provision` sets them;
    a missing or different limit is a warning (one tenant could crowd the broker)."""
    want = provisioning.limits_for(settings)
    shown = ", ".join(f"{k} {v}" for k, v in want.items())
    problems, counted = [], 0
    for t in tenants:
        if t.broker_username is None:
            continue
        counted += 1
        have = await mgmt.user_limits(t.broker_username)
        if have == want:
            continue
        if not have:
            problems.append(f"{t.code}: none set")
        else:
            problems.append(f"{t.code}: " + ", ".join(f"{k} {v}" for k, v in sorted(have.items())))
    if problems:
        detail = f"want {shown}; " + "; ".join(problems[:10]) + " (re-run `inbeeld tenant provision`)"
        return Check("tenant broker limits", "warn", detail)
    return Check("tenant broker limits", "pass", f"{shown} on each of {counted} tenants")


# -- isolation probe -------------------------------------------------------------------------

Attempt = Callable[[AbstractChannel], Awaitable[object]]


async def _ignore(message: object) -> None:
    pass


def _attempts(
    probe_user: str, probe_inbox: str, victim_queue: str, victim_key: str, victim_user: str
) -> list[tuple[str, Attempt, type[Exception]]]:
    def message(user_id: str) -> aio_pika.Message:
        return aio_pika.Message(b"{}", user_id=user_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)

    async def consume(ch: AbstractChannel) -> object:
        return await (await ch.get_queue(victim_queue, ensure=False)).consume(_ignore)

    async def declare(ch: AbstractChannel) -> object:
        return await ch.declare_queue(f"{PROBE_PREFIX}snoop", durable=False, auto_delete=True)

    async def bind(ch: AbstractChannel) -> object:
        return await (await ch.get_queue(probe_inbox, ensure=False)).bind(DELIVERY, victim_key)

    async def guess(ch: AbstractChannel) -> object:
        # RabbitMQ checks no permission on a passive declare: only an unguessable name hides
        # another tenant's inbox (its message and consumer counts).
        return await ch.declare_queue(legacy_inbox_name(victim_key), passive=True)

    async def to_delivery(ch: AbstractChannel) -> object:
        return await (await ch.get_exchange(DELIVERY, ensure=False)).publish(message(probe_user), victim_key)

    async def to_default(ch: AbstractChannel) -> object:
        return await ch.default_exchange.publish(message(probe_user), victim_queue)

    async def spoofed(ch: AbstractChannel) -> object:
        ingress = await ch.get_exchange(INGRESS, ensure=False)
        return await ingress.publish(message(victim_user), "nl.leerplicht.ping")

    return [
        (f"consume {victim_queue}", consume, ChannelAccessRefused),
        ("declare a queue", declare, ChannelAccessRefused),
        (f"bind own inbox to {DELIVERY}", bind, ChannelAccessRefused),
        (f"publish to {DELIVERY}", to_delivery, ChannelAccessRefused),
        ("publish to the default exchange", to_default, ChannelAccessRefused),
        ("publish with a spoofed user_id", spoofed, ChannelPreconditionFailed),
        (f"passive declare of a guessed inbox of {victim_key}", guess, ChannelNotFoundEntity),
    ]


async def _try(conn: AbstractConnection, attempt: Attempt) -> BaseException | None:
    """Run one attempt on a fresh channel (a refusal closes it); the exception, or None."""
    channel = await conn.channel(publisher_confirms=True)
    try:
        await asyncio.wait_for(attempt(channel), 10)
    except Exception as exc:
        return exc
    finally:
        if not channel.is_closed:
            await channel.close()
    return None


async def _probe(mgmt: Management, settings: Settings, db: Database) -> list[Check]:
    async with db.session() as s:
        victims = [t for t in await registry.list_tenants(s) if t.active and t.broker_username]
    probe_code = PROBE_PREFIX + secrets.token_hex(4)
    probe_user = provisioning.broker_username(settings.vhost, probe_code)
    password = secrets.token_urlsafe(24)
    probe_inbox = new_inbox_name(probe_code)
    # With no tenant yet the router's own queue is the thing to protect.
    victim_queue = (victims[0].inbox or legacy_inbox_name(victims[0].code)) if victims else ROUTER_QUEUE
    victim_key = victims[0].code if victims else "any"
    victim_user = victims[0].broker_username if victims else settings.api_credentials[0]
    checks: list[Check] = []
    try:
        async with amqp_channel(settings) as channel:
            await declare_inbox(channel, probe_inbox, probe_code, settings.delivery_limit, 10)
        await mgmt.put_user(probe_user, password)
        await provisioning.grant(mgmt, settings, probe_user, inbox=probe_inbox)
        conn = await open_connection(
            settings.amqp_url_for(user=probe_user, password=password),
            timeout=10,
            ssl_context=settings.amqp_ssl_context(),
        )
        try:
            own = probe_inbox

            async def control(ch: AbstractChannel) -> object:
                return await (await ch.get_queue(own, ensure=False)).consume(_ignore)

            error = await _try(conn, control)
            if error is not None:
                detail = f"the probe could not read its own inbox ({type(error).__name__})"
                return [Check("probe: control", "fail", detail)]
            checks.append(Check("probe: control", "pass", "reads its own inbox"))
            for name, attempt, expected in _attempts(
                probe_user, probe_inbox, victim_queue, victim_key, victim_user or ""
            ):
                error = await _try(conn, attempt)
                if isinstance(error, expected):
                    checks.append(Check(f"probe: {name}", "pass", f"refused ({type(error).__name__})"))
                elif error is None:
                    checks.append(Check(f"probe: {name}", "fail", "ALLOWED by the broker"))
                else:
                    checks.append(Check(f"probe: {name}", "fail", f"unexpected {type(error).__name__}"))
        finally:
            await conn.close()
    finally:
        await mgmt.delete_user(probe_user)  # also closes the probe's connections
        await mgmt.delete_queue(settings.vhost, probe_inbox)
    return checks
