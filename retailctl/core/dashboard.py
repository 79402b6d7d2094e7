"""The live dashboard's read model: time series, the breaker's timeline, one snapshot.

`dashboard_snapshot` assembles everything the page draws over [start, end): minute or
hour points (requests, errors, error rate, p50/p95/p99, orders), the breaker state as
a band, the errors with their request IDs, the firing alerts and the anomalous hours,
each marked with the chart it belongs to. Asked for a later `start` (what changed since
the last event), the same function answers the delta a live stream sends: the client
replaces points by their time and adds errors it has not seen by their row id.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from retailctl.core import tables as t
from retailctl.core.alerts import alerts_firing
from retailctl.core.anomalies import anomalies_find
from retailctl.core.errors import UsageError
from retailctl.core.metrics import (
    CIRCUIT_BREAKER_STATE,
    ERROR_RATE,
    breaker_state_before,
    breaker_state_of,
)
from retailctl.core.rules import duration_parse, duration_text
from retailctl.core.series import (
    HOUR,
    MINUTE,
    HourStats,
    hour_floor,
    hourly_stats,
    minute_floor,
    minute_stats,
)
from retailctl.core.sketch import quantile, route_of

MINUTE_RESOLUTION, HOUR_RESOLUTION = "minute", "hour"
RESOLUTIONS = {MINUTE_RESOLUTION: MINUTE, HOUR_RESOLUTION: HOUR}
SHORTEST_RANGE, LONGEST_RANGE = timedelta(minutes=15), timedelta(days=30)
# Minute points beyond a day are more than a chart (or a table) can show.
LONGEST_MINUTE_RANGE = timedelta(days=1)
# Ranges up to this long default to minute points, longer ones to hours.
_MINUTE_BY_DEFAULT = timedelta(hours=6)
# Workers flush their metric rows in batches: a row may land this long after its time,
# so a delta reads that far back before the time it was asked for.
LATE_ROWS = timedelta(seconds=15)
ERRORS_SHOWN = 50
# The chart each alert or anomaly is marked on, by its rule's metric or series.
_CHART_OF_METRIC = {
    "requests": "requests",
    "requests_total": "requests",
    "errors": "errors",
    "errors_total": "errors",
    "error_rate": "errors",
    "p95": "latency",
    "p99": "latency",
    "avg_response_time_ms": "latency",
    "p95_response_time_ms": "latency",
    "p99_response_time_ms": "latency",
    "orders": "orders",
    "orders_total": "orders",
    "orders_per_day": "orders",
    "A1": "orders",
    "A2": "breaker",
    "circuit_breaker_state": "breaker",
    "payment_success_rate": "breaker",
}


@dataclass(frozen=True)
class Span:
    """The range a dashboard shows and the width of its points."""

    range: timedelta
    resolution: str

    @property
    def width(self) -> timedelta:
        return RESOLUTIONS[self.resolution]

    @property
    def range_text(self) -> str:
        return duration_text(self.range)


def span_parse(range_text: str | None, resolution: str | None) -> Span:
    """Return the span of `?range=` (15m to 30d) and `?resolution=` (minute or hour)."""
    try:
        length = duration_parse(range_text or "1h")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not SHORTEST_RANGE <= length <= LONGEST_RANGE:
        raise UsageError("range must be from 15m to 30d")
    if not resolution:
        resolution = MINUTE_RESOLUTION if length <= _MINUTE_BY_DEFAULT else HOUR_RESOLUTION
    if resolution not in RESOLUTIONS:
        raise UsageError("resolution must be minute or hour")
    if resolution == MINUTE_RESOLUTION and length > LONGEST_MINUTE_RANGE:
        raise UsageError("minute resolution covers at most 1d: use hour for longer ranges")
    return Span(range=length, resolution=resolution)


def _number(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def point_document(stats: HourStats) -> dict[str, Any]:
    """Return one point of the series as the page draws it."""
    return {
        "t": stats.hour.isoformat(),
        "requests": stats.requests,
        "errors": stats.errors,
        "error_rate": _number(stats.error_rate),
        "p50": _number(quantile(stats.latency, 0.5)),
        "p95": _number(quantile(stats.latency, 0.95)),
        "p99": _number(quantile(stats.latency, 0.99)),
        "orders": stats.orders,
    }


def series_points(
    conn: Connection, *, start: datetime, end: datetime, resolution: str, now: datetime
) -> list[HourStats]:
    """Return the points of [start, end) at minute or hour width, oldest first.

    Minutes come from the raw rows through their index; hours through the anomaly
    detector's kept hours, computing only those not kept yet.
    """
    if resolution == MINUTE_RESOLUTION:
        return minute_stats(conn, start=start, end=end)
    first = hour_floor(start)
    hours = []
    while first < end:
        hours.append(first)
        first += HOUR
    stats = hourly_stats(conn, hours, now=now)
    return [stats[hour] for hour in hours]


def breaker_timeline(conn: Connection, *, start: datetime, end: datetime) -> list[dict]:
    """Return the breaker's states over [start, end) as {start, end, state} bands.

    The state at `start` is the latest change before it ('unknown' without one); each
    recorded change (`circuit_breaker_state` rows, metadata `to`) starts a new band.
    """
    m = t.metric
    changes = conn.execute(
        select(m.c.recorded_at, m.c.metadata)
        .where(
            m.c.metric_type == CIRCUIT_BREAKER_STATE,
            m.c.recorded_at >= start,
            m.c.recorded_at < end,
        )
        .order_by(m.c.recorded_at, m.c.id)
    ).all()
    bands = [{"start": start, "state": _band_state(breaker_state_before(conn, start))}]
    for recorded_at, metadata in changes:
        state = _band_state(breaker_state_of(metadata))
        if state == bands[-1]["state"]:
            continue
        if recorded_at <= bands[-1]["start"]:
            bands[-1]["state"] = state
        else:
            bands.append({"start": recorded_at, "state": state})
    ends = [band["start"] for band in bands[1:]] + [end]
    return [
        {"start": band["start"].isoformat(), "end": stop.isoformat(), "state": band["state"]}
        for band, stop in zip(bands, ends, strict=True)
    ]


def _band_state(state: str | None) -> str:
    return state.lower() if state else "unknown"


def errors_since(conn: Connection, *, start: datetime, end: datetime) -> list[dict]:
    """Return the latest error rows of [start, end), newest first, with their request IDs."""
    m = t.metric
    rows = conn.execute(
        select(m.c.id, m.c.recorded_at, m.c.metadata)
        .where(m.c.metric_type == ERROR_RATE, m.c.recorded_at >= start, m.c.recorded_at < end)
        .order_by(m.c.recorded_at.desc(), m.c.id.desc())
        .limit(ERRORS_SHOWN)
    )
    errors = []
    for row_id, recorded_at, metadata in rows:
        meta = metadata if isinstance(metadata, dict) else {}
        errors.append(
            {
                "id": row_id,
                "recorded_at": recorded_at.isoformat(),
                "method": str(meta.get("method") or ""),
                "route": route_of(meta),
                "status_code": meta.get("status_code"),
                "error": meta.get("error") or meta.get("exception"),
                "fingerprint": meta.get("fingerprint"),
                "request_id": meta.get("request_id"),
            }
        )
    return errors


def chart_of(metric: str | None, name: str = "") -> str:
    """Return the chart an alert or anomaly belongs on: by its metric, else by its name."""
    if metric in _CHART_OF_METRIC:
        return _CHART_OF_METRIC[metric]
    for key, chart in _CHART_OF_METRIC.items():
        if key.lower() in name.lower():
            return chart
    return "requests"


def _alerts(conn: Connection) -> list[dict]:
    alerts = []
    for state in alerts_firing(conn):
        # Anomaly rules keep their series as `metric`, threshold rules their KPI as `kpi`.
        detail = state.detail or {}
        metric = detail.get("metric") or detail.get("kpi")
        alerts.append({**state.to_document(), "chart": chart_of(metric, state.rule)})
    return alerts


def dashboard_snapshot(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    resolution: str,
    anomalies: bool = True,
) -> dict[str, Any]:
    """Return the page's document over [start, end): points, breaker, errors, alerts.

    `anomalies=False` leaves the anomalous hours out (a delta within one hour: they
    are judged on complete hours only, so nothing there has changed).
    """
    end = end.astimezone(UTC)
    floor = minute_floor if resolution == MINUTE_RESOLUTION else hour_floor
    first = floor(start)
    points = series_points(conn, start=first, end=end, resolution=resolution, now=end)
    document: dict[str, Any] = {
        "start": first.isoformat(),
        "end": end.isoformat(),
        "resolution": resolution,
        "points": [point_document(stats) for stats in points],
        "breaker": breaker_timeline(conn, start=first, end=end),
        "errors": errors_since(conn, start=start, end=end),
        "alerts_firing": _alerts(conn),
    }
    if anomalies:
        days = max(1, -(-(end - first) // timedelta(days=1)))
        document["anomalies"] = [
            {**verdict.to_document(), "chart": chart_of(verdict.series)}
            for verdict in anomalies_find(conn, days=days, now=end)
            if verdict.hour + HOUR > first
        ]
    return document


def dashboard_delta(
    conn: Connection, *, since: datetime, now: datetime, resolution: str
) -> dict[str, Any]:
    """Return what changed since `since`: the snapshot from there (less LATE_ROWS) to now."""
    start = since - LATE_ROWS
    return dashboard_snapshot(
        conn,
        start=start,
        end=now,
        resolution=resolution,
        anomalies=hour_floor(start) != hour_floor(now),
    )
