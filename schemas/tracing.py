"""Traces (OpenTelemetry) for the hub and the connector: one set-up per process, spans linked
across processes through the envelope's W3C `traceparent`.

    sender connector   connector.publish            its context goes into the envelope
    router             router.decide                a child of the sender's publish; every
                                                    copy of the event carries it
                       router.publish, router.confirm   one per batch, linked to each decision
    receiver connector connector.receive -> connector.decrypt, later connector.webhook

Off by default: the provider then samples nothing (`ALWAYS_OFF`), so a span is a pair of
random ids and nothing is recorded or exported, yet every envelope still gets a traceparent
and every processing-log record a trace and span id (Logboek dataverwerkingen needs them
whether or not anyone collects traces). On, with an OTLP endpoint, every span is recorded
and exported over OTLP/HTTP in batches.

A span's attributes are metadata only: event id and type, tenant codes, counts, reason codes.
Never a payload, a subject's name, a BSN, an address: those are sealed, and stay sealed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from functools import cache
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

__all__ = [
    "Span",
    "SpanKind",
    "active",
    "add_trace_ids",
    "configure",
    "context_of",
    "current_traceparent",
    "fail",
    "ids_of",
    "link_to",
    "otlp_traces_url",
    "provider",
    "recording",
    "start",
    "traceparent_of",
]

# The SDK (opentelemetry.sdk) is imported when it is first needed, not with this module: a
# command line that only prints its help has no spans to make. Until `configure`, the process's
# provider is the default one (samples nothing), made on first use.
_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_recording = False
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)


@cache
def _ids() -> RandomIdGenerator:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    return RandomIdGenerator()


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base endpoint (`http://collector:4318`)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def configure(
    service: str,
    *,
    endpoint: str | None = None,
    exporter: SpanExporter | None = None,
    record: bool | None = None,
) -> TracerProvider:
    """Set this process's tracer provider (the previous one is shut down). `endpoint`: export
    over OTLP/HTTP in batches; `exporter`: export each span as it ends (tests). `record`
    defaults to whether anything exports, or to OpenTelemetry's own `OTEL_TRACES_SAMPLER`
    being `always_on`: recording without exporting measures what tracing costs."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON

    global _provider, _tracer
    if record is None:
        always = os.environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() == "always_on"
        record = endpoint is not None or exporter is not None or always
    on = record
    new = TracerProvider(
        sampler=ALWAYS_ON if on else ALWAYS_OFF,
        resource=Resource.create({"service.name": service}),
    )
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        new.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_traces_url(endpoint))))
    if exporter is not None:
        new.add_span_processor(SimpleSpanProcessor(exporter))
    global _recording
    old, _provider, _tracer, _recording = _provider, new, new.get_tracer("inbeeld"), on
    if old is not None:
        old.shutdown()
    return new


def provider() -> TracerProvider:
    global _provider, _tracer
    if _provider is None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

        _provider = TracerProvider(sampler=ALWAYS_OFF)
        _tracer = _provider.get_tracer("inbeeld")
    return _provider


def recording() -> bool:
    """Whether spans are recorded (tracing on), so worth instrumenting more (HTTP requests)."""
    return _recording


def context_of(traceparent: str | None) -> Context:
    """A context whose parent is the span a W3C traceparent names (an empty one without)."""
    if not traceparent:
        return Context()
    return _propagator.extract({"traceparent": traceparent})


def start(
    name: str,
    *,
    traceparent: str | None = None,
    parent: Span | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | bool] | None = None,
    links: Sequence[trace.Link] = (),
) -> Span:
    """Start a span: the child of `parent`, else of the span `traceparent` names, else of the
    current span. `links`: the spans a batch operation worked for (`link_to`). End it (or use
    it as a context manager with `trace.use_span`)."""
    if not _recording:
        # Off: what the SDK would make (an unsampled span: the parent's trace, a new span id),
        # without its sampler and bookkeeping, since nothing is recorded anyway.
        if parent is not None:
            up = parent.get_span_context()
        elif traceparent is not None:
            up = trace.get_current_span(context_of(traceparent)).get_span_context()
        else:
            up = trace.get_current_span().get_span_context()
        ids = _ids()
        trace_id = up.trace_id if up.is_valid else ids.generate_trace_id()
        return NonRecordingSpan(SpanContext(trace_id, ids.generate_span_id(), False, _UNSAMPLED))
    if parent is not None:
        context: Context | None = trace.set_span_in_context(parent)
    elif traceparent is not None:
        context = context_of(traceparent)
    else:
        context = None
    assert _tracer is not None  # recording: `configure` made it
    return _tracer.start_span(name, context=context, kind=kind, attributes=attributes, links=links)


def link_to(spans: Iterable[Span | None]) -> list[trace.Link]:
    """Links from a batch's span to the recorded spans of the events in it (none when off)."""
    if not _recording:
        return []
    return [trace.Link(span.get_span_context()) for span in spans if span is not None]


def active(span: Span) -> AbstractContextManager[Span]:
    """Make `span` the current one for a block (log lines carry its ids), without ending it or
    recording an exception's message on it (a message might quote what it refused)."""
    return trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False)


def traceparent_of(span: Span) -> str | None:
    """The W3C traceparent that makes a receiver's span a child of `span`."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent")


def ids_of(span: Span) -> tuple[str, str] | None:
    """(trace id, span id) in hex, as logs and processing-log records carry them."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def fail(span: Span, reason: str) -> None:
    """Mark a span as failed with a reason code (never a message that could quote data)."""
    span.set_status(Status(StatusCode.ERROR, reason))
    span.set_attribute("inbeeld.reason", reason)


def current_traceparent() -> str | None:
    """The traceparent of the current span, for an outgoing HTTP request's header."""
    return traceparent_of(trace.get_current_span())


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's `trace_id` and `span_id` on every line."""
    ids = ids_of(trace.get_current_span())
    if ids is not None:
        event_dict.setdefault("trace_id", ids[0])
        event_dict.setdefault("span_id", ids[1])
    return event_dict
