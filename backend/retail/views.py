"""Staff pages over the read model: dashboard, quality scenarios, JSON API, Prometheus."""

import functools
import hmac
import math

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from sqlalchemy.exc import SQLAlchemyError

from retail import prometheus, selectors
from retail.apis import database_answers
from retail.exceptions import json_error, method_not_allowed

DEFAULT_DAYS = 7
MAX_DAYS = 3650
_CHART_WIDTH, _CHART_HEIGHT = 720, 170
# Room under the bars for the dates, and above and below them for text of 20 units.
_CHART_BASELINE, _CHART_MARGINS = 28, 52
# Widths in SVG units of a date label ("MM-DD" and a gap) and of one digit, at the
# largest font staff.css draws chart text with (20 units, on narrow screens).
_DATE_LABEL_UNITS, _DIGIT_UNITS = 72, 12
_READ_METHODS = ("GET", "HEAD")
# Colour of the breaker card; no recorded state is unknown, never healthy.
_BREAKER_CLASSES = {"closed": "ok", "half-open": "warn", "open": "bad"}


class _BadDays(ValueError):
    pass


def _days(request) -> int:
    raw = request.GET.get("days", str(DEFAULT_DAYS))
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DAYS:
        raise _BadDays(f"days must be an integer from 1 to {MAX_DAYS}")
    return int(raw)


def _bearer_ok(request) -> bool:
    token = settings.RETAIL_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), token.encode())


def _machine_auth_error(request) -> JsonResponse | None:
    """Let staff sessions and the metrics bearer token through; answer 401/403 otherwise."""
    if _bearer_ok(request):
        return None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_staff:
        return None
    if user is not None and user.is_authenticated:
        return json_error(403, "permission_denied", "Staff only.")
    response = json_error(401, "not_authenticated", "Staff session or bearer token required.")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _staff_data(view):
    """Answer GET and HEAD (anything else: JSON 405), never from a cache: staff data only."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in _READ_METHODS:
            return method_not_allowed(_READ_METHODS)
        return view(request, *args, **kwargs)

    return never_cache(wrapper)


def _read_model_view(view):
    """Answer a bad `days` with 400 and a read model that does not answer with 503."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except _BadDays as exc:
            return json_error(400, "invalid_request", str(exc))
        except (SQLAlchemyError, DatabaseError):
            return json_error(503, "database_unavailable", "The database does not answer.")

    return wrapper


def _machine_view(view):
    """Let a staff session or the metrics bearer token in; answer 401/403 otherwise."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        return _machine_auth_error(request) or view(request, *args, **kwargs)

    return wrapper


def _chart(daily: list[dict]) -> dict:
    """Lay out the daily orders as SVG bars, labelling only as many as fit.

    The SVG scales to the page width and staff.css draws its text larger on a phone, so
    labels are spaced for that size: dates every `step` bars (today always), counts
    where the bar is wide enough for the digits.
    """
    peak = max((day["orders"] for day in daily), default=0) or 1
    slot = _CHART_WIDTH / max(len(daily), 1)
    step = math.ceil(_DATE_LABEL_UNITS / slot)
    bars = []
    for index, day in enumerate(daily):
        height = round((_CHART_HEIGHT - _CHART_MARGINS) * day["orders"] / peak, 1)
        bars.append(
            {
                "x": round(index * slot + slot * 0.15, 1),
                "y": round(_CHART_HEIGHT - _CHART_BASELINE - height, 1),
                "width": round(slot * 0.7, 1),
                "height": height,
                "label_x": round(index * slot + slot / 2, 1),
                "date": day["date"][5:],
                "orders": day["orders"],
                "show_date": (len(daily) - 1 - index) % step == 0,
                "show_count": len(str(day["orders"])) * _DIGIT_UNITS + 4 <= slot,
            }
        )
    # Room left and right for the labels of the first and last bars.
    pad = _DATE_LABEL_UNITS // 2
    return {
        "width": _CHART_WIDTH + 2 * pad,
        "height": _CHART_HEIGHT,
        "view_box": f"{-pad} 0 {_CHART_WIDTH + 2 * pad} {_CHART_HEIGHT}",
        "bars": bars,
        "peak": peak,
    }


def _payment_rows(by_status: dict[str, int]) -> list[dict]:
    total = sum(by_status.values()) or 1
    return [
        {"status": status, "count": count, "percent": round(100 * count / total, 1)}
        for status, count in sorted(by_status.items(), key=lambda item: -item[1])
    ]


@_staff_data
@staff_member_required
@_read_model_view
def metrics_dashboard(request):
    """Show KPI cards, system health, daily orders, payments, errors and response times."""
    days = _days(request)
    report = selectors.metrics_report(days=days)
    errors = selectors.metrics_recent_errors(limit=10)
    kpis = report.kpis
    context = {
        "report": report,
        "kpis": kpis,
        "days": days,
        "ready": database_answers(),
        "breaker_state": kpis["circuit_breaker_state"] or "unknown",
        "breaker_class": _BREAKER_CLASSES.get(
            (kpis["circuit_breaker_state"] or "").lower(), "unknown"
        ),
        "error_rate_ok": kpis["error_rate"] < 5,
        "chart": _chart(report.daily),
        "payments": _payment_rows(report.payments_by_status),
        "recent_errors": errors,
        "error_groups": selectors.error_groups_top(days=days),
        "alerts_firing": selectors.alerts_firing_document(),
        "anomalies": [v.to_document() for v in selectors.anomalies_recent(days=1)],
    }
    return render(request, "retail/metrics_dashboard.html", context)


@_staff_data
@staff_member_required
@_read_model_view
def quality_scenarios(request):
    """Show the A1 and A2 verdicts with their evidence."""
    days = _days(request)
    document = selectors.scenarios_document(days=days)
    scenarios = [
        {
            "name": name,
            "status": result["status"],
            "no_data": result["no_data"],
            "evidence": [
                (key, value) for key, value in result.items() if key not in ("status", "no_data")
            ],
        }
        for name, result in document.items()
    ]
    return render(request, "retail/quality_scenarios.html", {"scenarios": scenarios, "days": days})


@_staff_data
@_machine_view
@_read_model_view
def metrics_api(request):
    """Answer SPEC §4's metrics document, plus the top error groups, the firing alerts and the
    last day's anomalies."""
    days = _days(request)
    document = selectors.metrics_document(days=days)
    document["error_groups"] = selectors.error_groups_top(days=days)
    document["alerts_firing"] = selectors.alerts_firing_document()
    document["anomalies"] = [v.to_document() for v in selectors.anomalies_recent(days=1)]
    return JsonResponse(document)


@_staff_data
@_machine_view
@_read_model_view
def metrics_prometheus(request):
    """Answer the Prometheus text exposition format, generated from the read model."""
    return HttpResponse(prometheus.prometheus_exposition(), content_type=prometheus.CONTENT_TYPE)
