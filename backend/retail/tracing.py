"""W3C Trace Context across services: continue the caller's trace or start one (SPEC §3.5).

Every request runs in a trace: the inbound `traceparent` is continued, or a new trace starts.
Its `trace_id` is stamped on every log line of the request, and each call to another
service (the payment gateway) is a child span whose `traceparent` and `X-Request-ID` go out
with it, so the other service's lines carry the same ids.

With `OTEL_EXPORTER_OTLP_ENDPOINT` set, the spans are OpenTelemetry SDK spans exported over
OTLP/HTTP by a batch processor, and their ids are the ones logged. Unset, no OpenTelemetry
code is imported or run: the ids are drawn here, a few random bytes per request.
"""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from retail.context import request_id_var, span_id_var, trace_id_var

# version-traceid-parentid-flags, lowercase hex; version ff is invalid.
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16
# The OpenTelemetry span of the request being handled (only with an exporter).
_otel_span: ContextVar[Any] = ContextVar("retail_otel_span", default=None)


def traceparent_parse(header: str | None) -> tuple[str, str] | None:
    """Return (trace id, parent span id) of a valid W3C `traceparent` header, else None."""
    if not header:
        return None
    match = _TRACEPARENT.fullmatch(header.strip())
    if match is None:
        return None
    trace_id, parent_id = match.groups()
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_SPAN_ID:
        return None
    return trace_id, parent_id


def new_trace_id() -> str:
    """Return a random 16-byte trace id, as lowercase hex."""
    return os.urandom(16).hex()


def new_span_id() -> str:
    """Return a random 8-byte span id, as lowercase hex."""
    return os.urandom(8).hex()


def otel_enabled() -> bool:
    """Return whether spans are exported (OpenTelemetry's own variable is set)."""
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())


@contextmanager
def request_trace(
    traceparent: str | None, *, name: str, attributes: dict[str, Any] | None = None
) -> Iterator[Any]:
    """Bind the trace and span of a request handled now; yield the OpenTelemetry span or None."""
    inbound = traceparent_parse(traceparent)
    span = None
    if otel_enabled():
        span = _tracer().start_span(
            name, context=_otel_parent(inbound), kind=_span_kind("SERVER"), attributes=attributes
        )
        context = span.get_span_context()
        trace_id, span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
    else:
        trace_id = inbound[0] if inbound else new_trace_id()
        span_id = new_span_id()
    tokens = trace_id_var.set(trace_id), span_id_var.set(span_id), _otel_span.set(span)
    try:
        yield span
    finally:
        _otel_span.reset(tokens[2])
        span_id_var.reset(tokens[1])
        trace_id_var.reset(tokens[0])
        if span is not None:
            span.end()


@contextmanager
def job_trace(name: str) -> Iterator[str]:
    """Bind a request ID and a trace for a job outside any request (a cron command).

    Its log lines, and the lines of the services it calls, share them: `retailctl trace`
    follows a reconciliation run as it follows a request. Yields the request ID.
    """
    request_id = f"{name}-{os.urandom(8).hex()}"
    token = request_id_var.set(request_id)
    try:
        with request_trace(None, name=name):
            yield request_id
    finally:
        request_id_var.reset(token)


@contextmanager
def outgoing_call(name: str, attributes: dict[str, Any] | None = None) -> Iterator[dict[str, str]]:
    """Open the child span of a call to another service; yield the headers that carry it.

    Outside a request (a cron job) the call starts a trace of its own.
    """
    trace_id = trace_id_var.get() or new_trace_id()
    span = None
    if otel_enabled():
        from opentelemetry import trace

        parent = _otel_span.get()
        context = (
            trace.set_span_in_context(parent)
            if parent is not None
            else _otel_parent((trace_id, span_id_var.get()) if span_id_var.get() else None)
        )
        span = _tracer().start_span(
            name, context=context, kind=_span_kind("CLIENT"), attributes=attributes
        )
        ids = span.get_span_context()
        trace_id, span_id = f"{ids.trace_id:032x}", f"{ids.span_id:016x}"
    else:
        span_id = new_span_id()
    headers = {"traceparent": f"00-{trace_id}-{span_id}-01"}
    request_id = request_id_var.get()
    if request_id is not None:
        headers["X-Request-ID"] = request_id
    try:
        yield headers
    finally:
        if span is not None:
            span.end()


def span_set_status_code(span: Any, status_code: int) -> None:
    """Record an HTTP answer on an OpenTelemetry span (5xx marks it an error)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("http.response.status_code", status_code)
    if status_code >= 500:
        span.set_status(Status(StatusCode.ERROR))


def _span_kind(kind: str):
    from opentelemetry.trace import SpanKind

    return getattr(SpanKind, kind)


def _otel_parent(inbound: tuple[str, str] | None):
    if inbound is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    context = SpanContext(
        trace_id=int(inbound[0], 16),
        span_id=int(inbound[1], 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(context))


@lru_cache(maxsize=1)
def _provider():
    """Set up the OTLP/HTTP exporter behind a batch processor, once per process."""
    import atexit

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = os.environ.get("OTEL_SERVICE_NAME", "").strip() or "retail-backend"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    # The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and its headers, timeout) itself.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    atexit.register(provider.shutdown)
    return provider


def _tracer():
    return _provider().get_tracer("retail")


def flush_spans() -> None:
    """Export the spans still queued now (gunicorn's worker_exit calls it); no-op when off."""
    if _provider.cache_info().currsize:
        _provider().force_flush()


def _reset_after_fork() -> None:
    # The batch processor's thread does not survive fork(): a worker sets up its own.
    _provider.cache_clear()


os.register_at_fork(after_in_child=_reset_after_fork)
