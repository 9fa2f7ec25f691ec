"""The connector's Prometheus metrics (prometheus-client's default registry), served by
`connectors.metrics_port` when the config has a [metrics] section. Labels are bounded: sink
names from the config, reason codes, the contract's event types; never an event id.

    inbeeld_connector_events_processed_total{type}       inbox events handled and acked
    inbeeld_connector_open_failures_total{reason}        events not opened: bad signature,
                                                         not decryptable, invalid inside
    inbeeld_connector_sequence_gaps_total                runs of missing inbox sequence numbers
    inbeeld_connector_webhook_attempts_total{sink}       POSTs to a webhook sink
    inbeeld_connector_webhook_failures_total{sink}       ... that failed (unreachable or non-2xx)
    inbeeld_connector_webhook_duration_seconds{sink}     how long each POST took
    inbeeld_connector_letters_rendered_total{format}     letters rendered (pdf, html)
    inbeeld_connector_outbox_items{sink,status}          the outbox, counted on each scrape
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from schemas.events import EVENTS

events_processed = Counter(
    "inbeeld_connector_events_processed",
    "Inbox events the connector handled and acked, by event type (`other`: a type this "
    "connector does not know).",
    ["type"],
)

open_failures = Counter(
    "inbeeld_connector_open_failures",
    "Inbox events the connector could not open (signature, decryption or payload invalid), "
    "by reason code; each is dead-lettered.",
    ["reason"],
)

sequence_gaps = Counter(
    "inbeeld_connector_sequence_gaps",
    "Runs of inbox sequence numbers that did not arrive (a resync is needed).",
)

webhook_attempts = Counter(
    "inbeeld_connector_webhook_attempts", "Deliveries tried to a webhook sink.", ["sink"]
)

webhook_failures = Counter(
    "inbeeld_connector_webhook_failures",
    "Webhook deliveries that failed (unreachable, or an answer other than 2xx).",
    ["sink"],
)

webhook_duration = Histogram(
    "inbeeld_connector_webhook_duration_seconds",
    "How long one webhook delivery took (until the answer or the failure).",
    ["sink"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

letters_rendered = Counter(
    "inbeeld_connector_letters_rendered", "Letters rendered from a template, by format.", ["format"]
)


def event_processed(event_type: str) -> None:
    events_processed.labels(type=event_type if event_type in EVENTS else "other").inc()


def webhook_done(sink: str, started: float, *, ok: bool) -> None:
    """One webhook delivery, begun at `time.perf_counter()` `started`, ended (ok or not)."""
    webhook_duration.labels(sink=sink).observe(time.perf_counter() - started)
    webhook_attempts.labels(sink=sink).inc()
    if not ok:
        webhook_failures.labels(sink=sink).inc()
