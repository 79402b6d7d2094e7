"""Staff pages over the read model: dashboard, quality scenarios, JSON API, Prometheus."""

import functools
import hmac

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from retail import selectors
from retail.apis import database_answers
from retail.exceptions import json_error

DEFAULT_DAYS = 7
MAX_DAYS = 3650
# pybreaker's state names, as the breaker records them.
BREAKER_STATES = ("closed", "open", "half-open")
_CHART_WIDTH, _CHART_HEIGHT = 720, 160


class _BadDays(ValueError):
    pass


def _days(request) -> int:
    raw = request.GET.get("days", str(DEFAULT_DAYS))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
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
    """Lay out the daily orders as SVG bars."""
    peak = max((day["orders"] for day in daily), default=0) or 1
    slot = _CHART_WIDTH / max(len(daily), 1)
    bars = []
    for index, day in enumerate(daily):
        height = round((_CHART_HEIGHT - 30) * day["orders"] / peak, 1)
        bars.append(
            {
                "x": round(index * slot + slot * 0.15, 1),
                "y": round(_CHART_HEIGHT - 20 - height, 1),
                "width": round(slot * 0.7, 1),
                "height": height,
                "label_x": round(index * slot + slot / 2, 1),
                "date": day["date"][5:],
                "orders": day["orders"],
            }
        )
    return {"width": _CHART_WIDTH, "height": _CHART_HEIGHT, "bars": bars, "peak": peak}


def _payment_rows(by_status: dict[str, int]) -> list[dict]:
    total = sum(by_status.values()) or 1
    return [
        {"status": status, "count": count, "percent": round(100 * count / total, 1)}
        for status, count in sorted(by_status.items(), key=lambda item: -item[1])
    ]


@require_GET
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
        "breaker_ok": (kpis["circuit_breaker_state"] or "closed").lower() == "closed",
        "error_rate_ok": kpis["error_rate"] < 5,
        "chart": _chart(report.daily),
        "payments": _payment_rows(report.payments_by_status),
        "recent_errors": errors,
        "alerts_firing": selectors.alerts_firing_document(),
        "anomalies": [v.to_document() for v in selectors.anomalies_recent(days=1)],
    }
    return render(request, "retail/metrics_dashboard.html", context)


@require_GET
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


@require_GET
@_machine_view
@_read_model_view
def metrics_api(request):
    """Answer SPEC §4's metrics document, plus the firing alerts and the last day's anomalies."""
    document = selectors.metrics_document(days=_days(request))
    document["alerts_firing"] = selectors.alerts_firing_document()
    document["anomalies"] = [v.to_document() for v in selectors.anomalies_recent(days=1)]
    return JsonResponse(document)


class _ReadModelCollector:
    """Expose the read model's figures; every worker answers the same numbers."""

    def __init__(self, totals, today):
        self.totals = totals
        self.today = today

    def collect(self):
        totals, kpis = self.totals, self.today.kpis
        rows = totals.rows_by_type
        yield CounterMetricFamily(
            "retail_orders_paid", "Orders paid (status paid or refunded).", totals.orders_paid
        )
        yield CounterMetricFamily("retail_refunds", "Refunds made.", totals.refunds)
        requests = CounterMetricFamily(
            "retail_http_requests",
            "HTTP requests recorded, by status class.",
            labels=["status_class"],
        )
        for status_class, count in sorted(totals.requests_by_status_class.items()):
            requests.add_metric([status_class or "unknown"], count)
        yield requests
        for name, kind, text in (
            ("retail_http_errors", "error_rate", "HTTP 4xx/5xx answers recorded."),
            ("retail_throttled_requests", "throttled_requests", "Requests throttled."),
            (
                "retail_stock_conflicts",
                "stock_conflicts",
                "Oversell attempts stopped by the guard.",
            ),
        ):
            yield CounterMetricFamily(name, text, rows.get(kind, 0))
        breaker = GaugeMetricFamily(
            "retail_circuit_breaker_state",
            "1 for the payment breaker's current state (latest recorded change).",
            labels=["state"],
        )
        current = (kpis["circuit_breaker_state"] or "closed").lower()
        for state in sorted(set(BREAKER_STATES) | {current}):
            breaker.add_metric([state], 1.0 if state == current else 0.0)
        yield breaker
        latency = GaugeMetricFamily(
            "retail_response_time_ms",
            "Response time quantiles today (UTC), within 1% relative error.",
            labels=["quantile"],
        )
        for quantile, value in (
            ("0.5", self.today.p50_response_time_ms),
            ("0.95", kpis["p95_response_time_ms"]),
            ("0.99", kpis["p99_response_time_ms"]),
        ):
            if value is not None:
                latency.add_metric([quantile], value)
        yield latency
        if kpis["avg_response_time_ms"] is not None:
            yield GaugeMetricFamily(
                "retail_response_time_avg_ms",
                "Mean response time today.",
                kpis["avg_response_time_ms"],
            )
        yield GaugeMetricFamily(
            "retail_error_rate_percent", "Errors / requests today, in percent.", kpis["error_rate"]
        )
        if kpis["payment_success_rate"] is not None:
            yield GaugeMetricFamily(
                "retail_payment_success_rate_percent",
                "Succeeded / attempted payments today, in percent.",
                kpis["payment_success_rate"],
            )


@require_GET
@_machine_view
@_read_model_view
def metrics_prometheus(request):
    """Answer the Prometheus text exposition format, generated from the read model."""
    totals = selectors.metrics_lifetime()
    today = selectors.metrics_report(days=1)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ReadModelCollector(totals, today))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
