"""One error family and one renderer for SPEC's `{"error", "detail"}` bodies."""

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from retail.context import get_request_id


class ApplicationError(Exception):
    """A domain error the client can act on; subclasses set the status and code."""

    status_code = 400
    code = "bad_request"
    default_detail = "The request cannot be processed."

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None):
        self.detail = self.default_detail if detail is None else detail
        self.headers = headers or {}
        super().__init__(self.detail)


# DRF's own 404 detail: an unknown URL and an unknown object answer alike.
NOT_FOUND_DETAIL = "Not found."


def error_body(code: str, detail: Any) -> dict[str, Any]:
    """Build the JSON body of every error answer."""
    return {"error": code, "detail": detail, "request_id": get_request_id()}


_DRF_CODES: dict[type[drf_exceptions.APIException], str] = {
    drf_exceptions.ParseError: "malformed_json",
    drf_exceptions.ValidationError: "invalid_request",
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "throttled",
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render domain and DRF errors as SPEC's JSON body; leave the rest to the 500 handler."""
    if isinstance(exc, ApplicationError):
        return Response(
            error_body(exc.code, exc.detail), status=exc.status_code, headers=exc.headers
        )
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound(NOT_FOUND_DETAIL)
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if not isinstance(exc, drf_exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None) is not None:
        # The seconds the body states: DRF's Throttled rounds the wait up into its detail.
        headers["Retry-After"] = str(math.ceil(exc.wait))
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    return Response(error_body(code, exc.detail), status=exc.status_code, headers=headers)


def json_error(status: int, code: str, detail: Any) -> JsonResponse:
    """Answer a plain Django view's error in SPEC's JSON shape, compact as DRF writes it."""
    response = JsonResponse(
        error_body(code, detail), status=status, json_dumps_params={"separators": (",", ":")}
    )
    # The error group of this answer is read from here (retail.fingerprints.error_code_of).
    response.error_code = code
    return response


def method_not_allowed(allowed: tuple[str, ...]) -> JsonResponse:
    """Answer a method the view does not take with a JSON 405 naming the ones it does."""
    response = json_error(405, "method_not_allowed", f"Use {' or '.join(allowed)}.")
    response["Allow"] = ", ".join(allowed)
    return response


def payload_too_large(max_bytes: int) -> JsonResponse:
    """Answer a body over the upload limit with a JSON 413."""
    return json_error(413, "payload_too_large", f"The body is over {max_bytes} bytes.")


def bad_request(request, exception=None) -> JsonResponse:
    """Answer Django's 400 (e.g. a disallowed Host) as JSON; a body over the limit is a 413."""
    if isinstance(exception, RequestDataTooBig):
        return payload_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return json_error(400, "bad_request", "The request is malformed.")


def permission_denied(request, exception=None) -> JsonResponse:
    """Answer Django's 403 (e.g. a CSRF failure) as JSON."""
    return json_error(403, "permission_denied", "You may not do this.")


def page_not_found(request, exception=None) -> JsonResponse:
    """Answer every unknown URL as JSON, without echoing the path."""
    return json_error(404, "not_found", NOT_FOUND_DETAIL)


def server_error(request) -> JsonResponse:
    """Answer an unhandled exception as JSON; the request ID lets on-call find the traceback."""
    return json_error(500, "internal_error", "An unexpected error occurred.")


def csrf_failure(request, reason: str = "") -> JsonResponse:
    """Answer a CSRF rejection as JSON."""
    return json_error(403, "csrf_failed", "CSRF verification failed.")
