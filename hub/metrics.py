"""The hub's Prometheus metrics (prometheus-client's default registry). Labels are bounded:
tenant codes, known event types and reason codes, never event ids or anything a sender
chooses freely.

    inbeeld_router_events_total{type,outcome,reason}   what the router made of each message
    inbeeld_router_batch_messages                      messages per batch (histogram)
    inbeeld_router_batch_duration_seconds              deciding and publishing one batch
    inbeeld_router_routing_latency_seconds             event time -> every copy confirmed
    inbeeld_router_confirm_duration_seconds            last copy published -> last confirm
    inbeeld_router_unknown_sender_total{claimed_user}  messages from no tenant, dropped
    inbeeld_router_directory_loaded_timestamp_seconds  when the router last loaded its tenant
                                                       directory (its age: time() - this)

A router process serves them on `INBEELD_ROUTER_METRICS_PORT` (`serve_router_metrics`); the
API serves them at /metrics with the gauges `hub.gauges` computes on scrape."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from schemas.events import EVENTS

UNKNOWN_SENDER_LABELS = 100  # distinct claimed users counted by name; the rest as "other"

# Outcomes of `inbeeld_router_events_total`.
RECEIVED = "received"  # parsed, from a known tenant (counted before any check)
ROUTED = "routed"  # recorded as routed, its copies published
REPEATED = "repeated"  # redelivered after routing: its stored copies published again
DUPLICATE = "duplicate"  # routed or rejected before: dropped
REJECTED = "rejected"  # refused; hub.rejected told the sender (reason: the error's code)
REFUSED = "refused"  # routed, but an inbox refused its copy (reason: recipient_busy)
DEAD_LETTERED = "dead_lettered"  # unparseable with no id to reject: to inbeeld.dlx

UNPARSED = "unparsed"  # the type label of a body that did not parse
OTHER = "other"  # the type label of an event type this hub does not know

unknown_sender = Counter(
    "inbeeld_router_unknown_sender",
    "Messages on the router queue whose user_id names no tenant (or is missing); dropped, "
    "their bodies not kept.",
    ["claimed_user"],
)

router_events = Counter(
    "inbeeld_router_events",
    "Messages the router handled, by event type, outcome (received, routed, repeated, "
    "duplicate, rejected, refused, dead_lettered) and reason code.",
    ["type", "outcome", "reason"],
)

directory_loaded = Gauge(
    "inbeeld_router_directory_loaded_timestamp_seconds",
    "Unix time at which the router last loaded its tenant directory from the store (reloaded "
    "when older than its time to live and when an address is not found); its age is time() - this.",
)

batch_messages = Histogram(
    "inbeeld_router_batch_messages",
    "Messages the router took as one batch (one store transaction).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)

batch_duration = Histogram(
    "inbeeld_router_batch_duration_seconds",
    "Time to decide one batch in the store and start publishing its copies.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

routing_latency = Histogram(
    "inbeeld_router_routing_latency_seconds",
    "From the event's `time` (the sender's clock) until every copy of it was confirmed by the broker.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

confirm_duration = Histogram(
    "inbeeld_router_confirm_duration_seconds",
    "From the last copy of a batch published until the broker confirmed them all.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)

_claimed: set[str] = set()
_events: dict[tuple[str, str, str], Callable[[float], None]] = {}


def count_unknown_sender(user_id: str | None) -> None:
    """Count one message from an unknown broker user. The label is the `user_id` the message
    claimed (the broker validated it: it is the connection's user) or `none`; after
    `UNKNOWN_SENDER_LABELS` distinct users, `other`, so a flood cannot grow the series."""
    label = (user_id or "none")[:64]
    if label not in _claimed:
        if len(_claimed) >= UNKNOWN_SENDER_LABELS:
            label = "other"
        else:
            _claimed.add(label)
    unknown_sender.labels(claimed_user=label).inc()


def type_label(event_type: str) -> str:
    """The event type as a label: one of the contract's types, else `other` (a sender must
    not be able to grow the series with made-up types)."""
    return event_type if event_type in EVENTS else OTHER


def count_event(event_type: str, outcome: str, reason: str = "", n: int = 1) -> None:
    """Count `n` messages of `event_type` (a contract type, `unparsed` or anything else, which
    is counted as `other`) with their outcome. The labelled child is looked up once per
    combination and kept: the hot path is a dict lookup and an increment."""
    key = (event_type, outcome, reason)
    inc = _events.get(key)
    if inc is None:
        label = event_type if event_type == UNPARSED else type_label(event_type)
        inc = router_events.labels(type=label, outcome=outcome, reason=reason[:32]).inc
        _events[key] = inc
    inc(n)


def count_received(event_types: list[str]) -> None:
    """Count the parsed messages of a batch as received (once the batch is decided, so a
    batch retried while the store is away is counted once)."""
    for event_type in event_types:
        count_event(event_type, RECEIVED)


def observe_routed(event_time: datetime, now: float | None = None) -> None:
    """The routing latency of one event whose copies are all confirmed now. The sender's
    clock may run ahead of ours: a negative latency counts as zero."""
    now = time.time() if now is None else now
    sent = event_time.timestamp() if event_time.tzinfo else event_time.replace(tzinfo=UTC).timestamp()
    routing_latency.observe(max(now - sent, 0.0))


def serve_router_metrics(port: int, host: str) -> tuple[WSGIServer, Thread]:
    """Serve the default registry over HTTP on `host:port` (0: a free port) from a thread;
    `server.shutdown()` stops it."""
    server, thread = start_http_server(port, addr=host)
    return server, thread
