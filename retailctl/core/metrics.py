"""KPI summary, daily series and route statistics over the read model (SPEC §4).

Traffic figures come from `retail_metric_rollup` (kept exact by triggers, one row per
day × route × status class × value bucket), minus the raw rows stamped in the future of
`now` on the window's last day; business figures come from the business tables.
"""

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select

from retailctl.core import tables as t
from retailctl.core.sketch import bucket_of, quantile, route_of, status_class_of
from retailctl.core.window import Window, window_between, window_for

AVG_RESPONSE_TIME = "avg_response_time"
ERROR_RATE = "error_rate"
STOCK_CONFLICTS = "stock_conflicts"
THROTTLED_REQUESTS = "throttled_requests"
CIRCUIT_BREAKER_STATE = "circuit_breaker_state"
PAID_STATUSES = ("paid", "refunded")
# A card declined by its issuer is the customer's answer, not a failure of the payment
# service; a timeout or a lost answer not yet reconciled (`unknown`) is one.
SERVICE_FAILURE_STATUSES = ("failed", "unknown")
ATTEMPTED_PAYMENT_STATUSES = ("succeeded", "declined", *SERVICE_FAILURE_STATUSES)


@dataclass(frozen=True)
class RouteStat:
    """Traffic of one route over the window."""

    route: str
    requests: int
    errors: int
    avg_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class MetricsReport:
    """Everything `retailctl metrics` and the dashboard show for one window."""

    window: Window
    kpis: dict[str, Any]
    daily: list[dict[str, Any]]
    p50_response_time_ms: float | None
    requests_by_status_class: dict[str, int]
    payments_by_status: dict[str, int]
    slowest_routes: list[RouteStat] = field(default_factory=list)
    error_routes: list[RouteStat] = field(default_factory=list)

    def to_document(self) -> dict[str, Any]:
        """Return SPEC §4's `metrics --json` document, with the route tables added.

        `slowest_routes` (by p95) and `error_routes` (by errors) are the tables the Rich
        view shows, five rows each; SPEC's keys stay as they are.
        """
        return {
            "window": {
                "days": self.window.days,
                "start": self.window.start.isoformat(),
                "end": self.window.end.isoformat(),
            },
            "kpis": dict(self.kpis),
            "daily": [dict(day) for day in self.daily],
            "slowest_routes": [asdict(route) for route in self.slowest_routes],
            "error_routes": [asdict(route) for route in self.error_routes],
        }


def utc_day(column, dialect_name: str):
    """Return an SQL expression of a timestamp column's UTC calendar day."""
    if dialect_name == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def _day_key(value: Any) -> str:
    return str(value)[:10]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class _Traffic:
    """Metric counts of the window, assembled from rollups and corrected for future rows."""

    per_type_day: Counter = field(default_factory=Counter)  # (type, day) -> rows
    latency: dict = field(default_factory=lambda: defaultdict(Counter))  # route -> buckets
    latency_sum: Counter = field(default_factory=Counter)  # route -> sum of ms
    latency_count: Counter = field(default_factory=Counter)  # route -> rows
    status_classes: Counter = field(default_factory=Counter)
    errors_by_route: Counter = field(default_factory=Counter)

    def add_detail(self, metric_type, route, status_class, bucket, samples, value_sum) -> None:
        """Count rows of one rollup key into the route and latency figures."""
        if metric_type == AVG_RESPONSE_TIME:
            self.latency[route][bucket] += samples
            self.latency_sum[route] += value_sum
            self.latency_count[route] += samples
            self.status_classes[status_class] += samples
        elif metric_type == ERROR_RATE:
            self.errors_by_route[route] += samples

    def add_rows(self, rows, *, sign: int) -> None:
        """Count raw (type, value, metadata, recorded_at) rows in (sign 1) or out (sign -1)."""
        for metric_type, value, metadata, recorded_at in rows:
            self.per_type_day[(metric_type, recorded_at.date().isoformat())] += sign
            self.add_detail(
                metric_type,
                route_of(metadata),
                status_class_of(metadata),
                bucket_of(value),
                sign,
                sign * value,
            )

    def type_total(self, metric_type: str) -> int:
        return sum(n for (kind, _), n in self.per_type_day.items() if kind == metric_type)


def _traffic(conn: Connection, window: Window) -> _Traffic:
    r = t.metric_rollup
    traffic = _Traffic()
    in_window = and_(r.c.day >= window.first_day, r.c.day <= window.last_day)
    per_day = (
        select(r.c.metric_type, r.c.day, func.sum(r.c.samples))
        .where(in_window)
        .group_by(r.c.metric_type, r.c.day)
    )
    for metric_type, day, samples in conn.execute(per_day):
        traffic.per_type_day[(metric_type, _day_key(day))] += int(samples)
    detail = (
        select(
            r.c.metric_type,
            r.c.route,
            r.c.status_class,
            r.c.bucket,
            func.sum(r.c.samples),
            func.sum(r.c.value_sum),
        )
        .where(in_window, r.c.metric_type.in_((AVG_RESPONSE_TIME, ERROR_RATE)))
        .group_by(r.c.metric_type, r.c.route, r.c.status_class, r.c.bucket)
    )
    for metric_type, route, status_class, bucket, samples, value_sum in conn.execute(detail):
        traffic.add_detail(
            metric_type, route, status_class, bucket, int(samples), float(value_sum or 0.0)
        )
    # The rollup of the last day also holds rows stamped after `end` (clock skew, tools
    # writing ahead); the raw index finds them cheaply, so take them back out.
    m = t.metric
    future = select(m.c.metric_type, m.c.value, m.c.metadata, m.c.recorded_at).where(
        m.c.recorded_at >= window.end, m.c.recorded_at < window.day_after
    )
    traffic.add_rows(conn.execute(future), sign=-1)
    return traffic


def _route_stats(traffic: _Traffic) -> list[RouteStat]:
    routes = set(traffic.latency_count) | set(traffic.errors_by_route)
    stats = []
    for route in routes:
        count = traffic.latency_count[route]
        stats.append(
            RouteStat(
                route=route or "(unknown)",
                requests=count,
                errors=traffic.errors_by_route[route],
                avg_ms=_round(traffic.latency_sum[route] / count) if count > 0 else None,
                p95_ms=_round(quantile(traffic.latency[route], 0.95)),
            )
        )
    return stats


def breaker_state_of(metadata: Any) -> str | None:
    """Return the state a `circuit_breaker_state` row changed to: metadata `to` (or `state`)."""
    if not isinstance(metadata, dict):
        return None
    state = metadata.get("to", metadata.get("state"))
    return None if state is None else str(state)


def breaker_state_before(conn: Connection, moment: datetime) -> str | None:
    """Return the breaker's state at `moment`: the latest change recorded before it."""
    m = t.metric
    latest = (
        select(m.c.metadata)
        .where(m.c.metric_type == CIRCUIT_BREAKER_STATE, m.c.recorded_at < moment)
        .order_by(t.time_order(m.c.recorded_at).desc(), m.c.id.desc())
        .limit(1)
    )
    return breaker_state_of(conn.execute(latest).scalar())


def _counts_by_day(conn: Connection, column, *conditions) -> Counter:
    day = utc_day(column, conn.dialect.name)
    query = select(day, func.count()).where(*conditions).group_by(day)
    return Counter({_day_key(d): int(n) for d, n in conn.execute(query)})


def payments_by_status(conn: Connection, window: Window) -> dict[str, int]:
    """Count payment attempts created in the window, by status."""
    p = t.payment
    query = (
        select(p.c.status, func.count())
        .where(p.c.created_at >= window.start, p.c.created_at < window.end)
        .group_by(p.c.status)
    )
    return {status: int(n) for status, n in conn.execute(query)}


def payment_success_rate(by_status: dict[str, int]) -> float | None:
    """Return succeeded / (succeeded + service failures) in percent; None without any.

    Declines are left out (see `payment_decline_rate`); so are checkouts an OPEN breaker
    turned away, which A2 reports as fast-fails.
    """
    succeeded = by_status.get("succeeded", 0)
    judged = succeeded + sum(by_status.get(status, 0) for status in SERVICE_FAILURE_STATUSES)
    return round(100.0 * succeeded / judged, 3) if judged else None


def payment_decline_rate(by_status: dict[str, int]) -> float | None:
    """Return declined / attempted payments in percent; None without attempts."""
    attempted = sum(by_status.get(status, 0) for status in ATTEMPTED_PAYMENT_STATUSES)
    return round(100.0 * by_status.get("declined", 0) / attempted, 3) if attempted else None


def _traffic_raw(conn: Connection, window: Window) -> _Traffic:
    """Count the raw rows of a short window through the (metric_type, recorded_at) index."""
    m = t.metric
    traffic = _Traffic()
    rows = select(m.c.metric_type, m.c.value, m.c.metadata, m.c.recorded_at).where(
        m.c.metric_type.in_((AVG_RESPONSE_TIME, ERROR_RATE, STOCK_CONFLICTS, THROTTLED_REQUESTS)),
        m.c.recorded_at >= window.start,
        m.c.recorded_at < window.end,
    )
    traffic.add_rows(conn.execute(rows), sign=1)
    return traffic


def metrics_summary(conn: Connection, *, days: int, now: datetime | None = None) -> MetricsReport:
    """Compute SPEC §4's KPIs and daily series for the last `days` days."""
    window = window_for(days=days, now=now)
    return _report(conn, window, _traffic(conn, window))


def metrics_between(conn: Connection, *, start: datetime, end: datetime) -> MetricsReport:
    """Compute the same KPIs over [start, end) from the raw rows (minute-scale windows)."""
    window = window_between(start=start, end=end)
    return _report(conn, window, _traffic_raw(conn, window))


def _report(conn: Connection, window: Window, traffic: _Traffic) -> MetricsReport:
    days = window.days
    o, rf = t.order, t.refund
    orders = _counts_by_day(
        conn,
        o.c.paid_at,
        o.c.paid_at >= window.start,
        o.c.paid_at < window.end,
        o.c.status.in_(PAID_STATUSES),
    )
    refunds = _counts_by_day(
        conn,
        rf.c.completed_at,
        rf.c.completed_at >= window.start,
        rf.c.completed_at < window.end,
        rf.c.status == "succeeded",
    )
    by_status = payments_by_status(conn, window)
    requests_total = traffic.type_total(AVG_RESPONSE_TIME)
    errors_total = traffic.type_total(ERROR_RATE)
    overall = Counter()
    for buckets in traffic.latency.values():
        overall.update(buckets)
    latency_sum = sum(traffic.latency_sum.values())
    orders_total = sum(orders.values())
    refunds_total = sum(refunds.values())
    kpis = {
        "orders_total": orders_total,
        "orders_per_day": round(orders_total / days, 3),
        "refunds_total": refunds_total,
        "refunds_per_day": round(refunds_total / days, 3),
        "requests_total": requests_total,
        "errors_total": errors_total,
        "error_rate": round(100.0 * errors_total / requests_total, 3) if requests_total else 0.0,
        "payment_success_rate": payment_success_rate(by_status),
        "payment_decline_rate": payment_decline_rate(by_status),
        "avg_response_time_ms": _round(latency_sum / requests_total) if requests_total else None,
        "p95_response_time_ms": _round(quantile(overall, 0.95)),
        "p99_response_time_ms": _round(quantile(overall, 0.99)),
        "circuit_breaker_state": breaker_state_before(conn, window.end),
        "stock_conflicts": traffic.type_total(STOCK_CONFLICTS),
        "throttled_requests": traffic.type_total(THROTTLED_REQUESTS),
    }
    daily = []
    for day in window.dates():
        key = day.isoformat()
        daily.append(
            {
                "date": key,
                "orders": orders[key],
                "refunds": refunds[key],
                "requests": traffic.per_type_day[(AVG_RESPONSE_TIME, key)],
                "errors": traffic.per_type_day[(ERROR_RATE, key)],
            }
        )
    routes = _route_stats(traffic)
    slowest = sorted(
        (r for r in routes if r.p95_ms is not None), key=lambda r: (-r.p95_ms, r.route)
    )
    erroring = sorted((r for r in routes if r.errors > 0), key=lambda r: (-r.errors, r.route))
    return MetricsReport(
        window=window,
        kpis=kpis,
        daily=daily,
        p50_response_time_ms=_round(quantile(overall, 0.50)),
        requests_by_status_class={k: v for k, v in traffic.status_classes.items() if v > 0},
        payments_by_status=by_status,
        slowest_routes=slowest[:5],
        error_routes=erroring[:5],
    )
