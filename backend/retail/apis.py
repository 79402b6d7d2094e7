"""Liveness and readiness probes."""

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from retail.exceptions import json_error, method_not_allowed

_PROBE_METHODS = ("GET", "HEAD")
# The spacing of every other JSON answer (DRF's and the error bodies').
_COMPACT = {"separators": (",", ":")}


# Probes change nothing: any method they do not take is a JSON 405, never a CSRF 403.
@csrf_exempt
def healthz(request) -> JsonResponse:
    """Answer 200 while the process is alive; touches no database."""
    if request.method not in _PROBE_METHODS:
        return method_not_allowed(_PROBE_METHODS)
    return JsonResponse({"status": "ok"}, json_dumps_params=_COMPACT)


def database_answers() -> bool:
    """Return whether Django's database connection answers a trivial query."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return False
    return True


@csrf_exempt
def readyz(request) -> JsonResponse:
    """Answer 200 when the database answers, 503 otherwise."""
    if request.method not in _PROBE_METHODS:
        return method_not_allowed(_PROBE_METHODS)
    if not database_answers():
        return json_error(503, "database_unavailable", "The database does not answer.")
    return JsonResponse({"status": "ok"}, json_dumps_params=_COMPACT)
