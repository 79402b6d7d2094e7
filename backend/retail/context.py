"""The request-scoped context (request ID, trace and span IDs) shared by middleware and logging."""

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("retail_request_id", default=None)
trace_id_var: ContextVar[str | None] = ContextVar("retail_trace_id", default=None)
# The span of the request being handled: the parent of its calls to other services.
span_id_var: ContextVar[str | None] = ContextVar("retail_span_id", default=None)


def get_request_id() -> str | None:
    """Return the ID of the request being handled, or None outside a request."""
    return request_id_var.get()


def get_trace_id() -> str | None:
    """Return the W3C trace ID of the request being handled (the caller's, or a new one)."""
    return trace_id_var.get()
