"""Staff pages over the read model: dashboard and its live stream, errors, a request's
lines, quality scenarios, JSON API, Prometheus."""

import functools
import hmac
import math
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db import DatabaseError, connections
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from sqlalchemy.exc import SQLAlchemyError

from retail import live, prometheus, selectors
from retail.apis import database_answers
from retail.exceptions import json_error, method_not_allowed
from retailctl.core.dashboard import Span, span_parse
from retailctl.core.errors import RetailctlError, UsageError
from retailctl.core.logs import REQUEST_ID_PATTERN, parse_timestamp

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
# A page over its worker's stream cap polls, and tries the stream again after this long.
_STREAM_RETRY_SECONDS = 30


class _BadDays(ValueError):
    pass


def _days(request) -> int:
    raw = request.GET.get("days", str(DEFAULT_DAYS))
    # ASCII digits only: str.isdigit() also takes '²', which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_DAYS:
        raise _BadDays(f"days must be an integer from 1 to {MAX_DAYS}")
    return int(raw)


def _span(request) -> Span:
    return span_parse(request.GET.get("range"), request.GET.get("resolution"))


def _since(request, span: Span, now: datetime) -> datetime | None:
    """Return where a delta starts: Last-Event-ID (a reconnect), else `?since=`; at most
    one range back."""
    raw = request.headers.get("Last-Event-ID") or request.GET.get("since")
    if not raw:
        return None
    since = parse_timestamp(raw)
    if since is None:
        raise UsageError("since must be an ISO 8601 time")
    return min(max(since, now - span.range), now)


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
        except (_BadDays, UsageError) as exc:
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


# The live charts: id, title, how they are drawn and the series each shows (a point's
# key, its label). The one definition: the page hands kind and keys to live.js in data
# attributes, and the tables behind the charts come from here.
LIVE_CHARTS = (
    ("requests", "Requests and errors", "bars", (("requests", "requests"), ("errors", "errors"))),
    ("errors", "Error rate", "lines", (("error_rate", "error rate %"),)),
    (
        "latency",
        "Response time",
        "lines",
        (("p50", "p50 ms"), ("p95", "p95 ms"), ("p99", "p99 ms")),
    ),
    ("orders", "Orders paid", "bars", (("orders", "orders"),)),
)


def _point_time(moment: str, resolution: str) -> str:
    """Return a point's time as its table shows it: HH:MM, or MM-DD HH:00 for hours."""
    return moment[11:16] if resolution == "minute" else f"{moment[5:10]} {moment[11:13]}:00"


def _live_charts(document: dict) -> list[dict]:
    """Return each chart with the rows of its table, newest first."""
    points = document["points"][::-1]
    resolution = document["resolution"]
    return [
        {
            "id": chart_id,
            "title": title,
            "kind": kind,
            "keys": " ".join(key for key, _ in series),
            "series": series,
            "rows": [
                (_point_time(point["t"], resolution), [point[key] for key, _ in series])
                for point in points
            ],
        }
        for chart_id, title, kind, series in LIVE_CHARTS
    ]


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
    """Show live charts and errors over a range, KPI cards, health, payments and routes."""
    days = _days(request)
    span = _span(request)
    report = selectors.metrics_report(days=days)
    document = selectors.dashboard_document(span=span)
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
        "error_groups": selectors.error_groups_top(days=days),
        "live": document,
        "charts": _live_charts(document),
        "span": span,
        "ranges": ("15m", "1h", "6h", "24h", "7d", "30d"),
        "alerts_firing": document["alerts_firing"],
        "anomalies": document["anomalies"],
    }
    return render(request, "retail/metrics_dashboard.html", context)


@_staff_data
@staff_member_required
@_read_model_view
def metrics_live(request):
    """Answer the dashboard's document as JSON, or only what changed since `?since=`
    (the page's fallback when it cannot stream)."""
    span = _span(request)
    now = datetime.now(UTC)
    since = _since(request, span, now)
    if since is None:
        return JsonResponse(selectors.dashboard_document(span=span, now=now))
    return JsonResponse(
        selectors.dashboard_changes(since=since, now=now, resolution=span.resolution)
    )


@_staff_data
@staff_member_required
@_read_model_view
def metrics_stream(request):
    """Stream the dashboard's changes as server-sent events (docs/live-dashboard.md).

    Over the worker's cap the answer is 503 with Retry-After, and the page polls
    /metrics/live/ instead: API requests always find a free thread.
    """
    span = _span(request)
    now = datetime.now(UTC)
    since = _since(request, span, now)
    stream = live.stream_open(span.resolution, selectors.dashboard_changes)
    if stream is None:
        response = json_error(
            503, "streams_full", "This worker serves all the live streams it may: poll instead."
        )
        response["Retry-After"] = str(_STREAM_RETRY_SECONDS)
        return response
    try:
        if since is None:
            document = selectors.dashboard_document(span=span, now=now)
        else:
            document = selectors.dashboard_changes(since=since, now=now, resolution=span.resolution)
    except BaseException:
        live.stream_close(stream)
        raise
    # The session read opened this thread's database connection: an open page must not
    # keep it for hours (the poller reads through the read model's own engine).
    connections.close_all()
    first = live.event_text(document, event_id=now.isoformat())
    response = StreamingHttpResponse(live.Events(stream, first), content_type="text/event-stream")
    response["X-Accel-Buffering"] = "no"
    return response


@_staff_data
@staff_member_required
@_read_model_view
def metrics_errors(request):
    """Show the error groups of the last `days` days, each linked to a sample request."""
    days = _days(request)
    groups = selectors.error_groups_top(days=days, limit=100)
    return render(request, "retail/metrics_errors.html", {"groups": groups, "days": days})


@_staff_data
@staff_member_required
def metrics_request(request, request_id: str):
    """Show one request's log lines across services, as `retailctl trace` prints them."""
    if not REQUEST_ID_PATTERN.match(request_id):
        raise Http404("not a request ID")
    try:
        result, rows = selectors.request_trace(request_id=request_id)
    except RetailctlError as exc:
        # No log directory, or one that cannot be read: say so, as retailctl would.
        context = {"request_id": request_id, "rows": [], "problem": str(exc), "days": DEFAULT_DAYS}
        return render(request, "retail/metrics_request.html", context, status=503)
    context = {
        "request_id": request_id,
        "rows": rows,
        "warnings": result.warnings,
        "files_searched": result.files_searched,
        "days": DEFAULT_DAYS,
    }
    return render(request, "retail/metrics_request.html", context, status=200 if rows else 404)


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
