"""Request observability: request ID, `http.request`/`http.response` records, request metrics."""

import logging
import os
import re
import sys
import time
from typing import Any
from urllib.parse import quote

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.signals import got_request_exception
from django.utils.functional import SimpleLazyObject, empty

from retail.context import request_id_var
from retail.fingerprints import error_code_of, error_fingerprint, exception_label
from retail.logging import log_fields
from retail.metrics import AVG_RESPONSE_TIME, ERROR_RATE, record_metric
from retail.tracing import request_trace, span_set_status_code

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# What a client can put in a path that must not reach a log line or a metric row as it is:
# C0/C1 controls (NUL, which PostgreSQL's jsonb refuses, and terminal escapes).
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# SPEC §3.6: the route of a path that matches no URL pattern; the path is the client's text.
UNMATCHED_ROUTE = "<unmatched>"
_EXC_INFO_ATTR = "retail_exc_info"
_http_logger = logging.getLogger("retail.http")


def _remember_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    # Django sends this while the exception is being handled; the middleware logs it once,
    # in the request's `http.response` record, instead of Django logging it again.
    if request is not None:
        setattr(request, _EXC_INFO_ATTR, sys.exc_info())


got_request_exception.connect(_remember_exception, dispatch_uid="retail.middleware.exc_info")


_UUID_VARIANT = "89ab"


def _uuid4() -> str:
    """Return a random UUID4 in canonical form, as str(uuid.uuid4()) but twice as fast."""
    digits = os.urandom(16).hex()
    # Version nibble 4; variant bits 10xx (RFC 4122) on the first digit of the 4th group.
    return (
        f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
        f"{_UUID_VARIANT[int(digits[16], 16) & 3]}{digits[17:20]}-{digits[20:]}"
    )


def request_id_from(inbound: str | None) -> str:
    """Return the inbound ID when it matches SPEC's pattern, otherwise a fresh UUID4."""
    if inbound and _VALID_REQUEST_ID.fullmatch(inbound):
        return inbound
    return _uuid4()


def _error_group(route: str | None, status: int, response: Any, exc_info: Any) -> dict:
    """Return the error-group keys (SPEC §3.6) of an error answer."""
    exception = exception_label(exc_info) if exc_info else None
    error = error_code_of(response)
    return {
        "fingerprint": error_fingerprint(
            route=route, status=status, error=error, exception=exception
        ),
        "error": error,
        "exception": exception,
    }


def _span_finish(span: Any, request: Any, response: Any) -> None:
    """Name an exported request span after its route, with its answer (OpenTelemetry on)."""
    if span is None:
        return
    route = _route(request)
    span.update_name(f"{request.method} /{route}" if route else request.method)
    span.set_attribute("http.request.method", request.method)
    if route:
        span.set_attribute("http.route", f"/{route}")
    span_set_status_code(span, response.status_code)


def _user_id(request: Any) -> Any:
    # Read after the view: DRF's authentication replaces `request.user`. A lazy user the
    # view never touched stays unevaluated, so logging adds no session read and no
    # `Vary: Cookie`.
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = user._wrapped
        if user is empty:
            return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def _route(request: Any) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None else UNMATCHED_ROUTE


def _recorded_path(request: Any) -> str:
    """Return the request's path with control characters percent-encoded, as sent."""
    path = request.path
    if _CONTROL_CHARACTERS.search(path) is None:
        return path
    return _CONTROL_CHARACTERS.sub(lambda found: quote(found.group(), safe=""), path)


class ObservabilityMiddleware:
    """Bind a request ID, log and measure the request, return the ID in `X-Request-ID`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.enabled = settings.RETAIL_OBSERVABILITY
        self.log_client_ip = settings.RETAIL_LOG_CLIENT_IP
        excluded = settings.RETAIL_OBSERVABILITY_EXCLUDED_PATHS
        self.excluded_prefixes = tuple(path for path in excluded if path.endswith("/"))
        self.excluded_paths = frozenset(path for path in excluded if not path.endswith("/"))
        self.uncounted_prefixes = tuple(settings.RETAIL_METRICS_UNCOUNTED_PATHS)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        meta = request.META
        request_id = request_id_from(meta.get("HTTP_X_REQUEST_ID"))
        token = request_id_var.set(request_id)
        try:
            with request_trace(meta.get("HTTP_TRACEPARENT"), name=request.method) as span:
                if self._observed(request):
                    started = self._start(request)
                    response = self.get_response(request)
                    self._finish(request, response, started)
                else:
                    response = self.get_response(request)
                _span_finish(span, request, response)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response

    async def __acall__(self, request):
        meta = request.META
        request_id = request_id_from(meta.get("HTTP_X_REQUEST_ID"))
        token = request_id_var.set(request_id)
        try:
            with request_trace(meta.get("HTTP_TRACEPARENT"), name=request.method) as span:
                if self._observed(request):
                    started = self._start(request)
                    response = await self.get_response(request)
                    self._finish(request, response, started)
                else:
                    response = await self.get_response(request)
                _span_finish(span, request, response)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response

    def _observed(self, request) -> bool:
        if not self.enabled:
            return False
        path = request.path_info
        return path not in self.excluded_paths and not path.startswith(self.excluded_prefixes)

    def _start(self, request) -> float:
        # Tells the `django.request` filter that this response is logged here already.
        request.retail_observed = True
        fields: dict[str, Any] = {
            "event": "http.request",
            "method": request.method,
            "path": _recorded_path(request),
        }
        if self.log_client_ip:
            fields["ip"] = request.META.get("REMOTE_ADDR")
        log_fields(_http_logger, logging.INFO, fields)
        return time.perf_counter()

    def _finish(self, request, response, started: float) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        status = response.status_code
        method = request.method
        route = _route(request)
        path = _recorded_path(request)
        fields: dict[str, Any] = {
            "event": "http.response",
            "method": method,
            "path": path,
            "route": route,
            "status_code": status,
            "duration_ms": duration_ms,
            "user_id": _user_id(request),
        }
        if self.log_client_ip:
            fields["ip"] = request.META.get("REMOTE_ADDR")
        level, exc_info, group = logging.INFO, None, None
        if status >= 400:
            level = logging.WARNING
            if status >= 500:
                # Popped: the traceback references the request's frames (a reference cycle).
                level, exc_info = logging.ERROR, request.__dict__.pop(_EXC_INFO_ATTR, None)
            group = _error_group(route, status, response, exc_info)
            fields["fingerprint"] = group["fingerprint"]
        log_fields(_http_logger, level, fields, exc_info)
        if request.path_info.startswith(self.uncounted_prefixes):
            return
        record_metric(
            AVG_RESPONSE_TIME,
            duration_ms,
            {"method": method, "route": route, "path": path, "status_code": status},
        )
        if group is not None:
            record_metric(
                ERROR_RATE,
                1,
                {
                    "status_class": f"{status // 100}xx",
                    "status_code": status,
                    "method": method,
                    "route": route,
                    "path": path,
                    "request_id": request_id_var.get(),
                    **group,
                },
            )
