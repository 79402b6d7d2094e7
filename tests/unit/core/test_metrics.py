"""The KPI summary: rollups give the raw rows' answers, business KPIs come from business tables."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from retailctl.core import tables as t
from retailctl.core.errors import UsageError
from retailctl.core.metrics import metrics_summary
from retailctl.core.sketch import exact_quantile

# A fixed afternoon: the windows start at midnight, so a clock read just after midnight put
# rows stamped "30 minutes ago" in yesterday and out of a one-day window.
NOW = datetime(2026, 12, 3, 14, 20, 30, tzinfo=UTC)


def _raw_expectation(engine, days):
    """Compute the traffic KPIs the slow way: every raw row of the window."""
    start = datetime.combine(NOW.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
    with engine.connect() as conn:
        raw = conn.execute(select(t.metric.c.metric_type, t.metric.c.value, t.metric.c.recorded_at))
        kept = [(kind, value) for kind, value, at in raw if start <= at < NOW]
    latencies = [value for kind, value in kept if kind == "avg_response_time"]
    return {
        "requests": len(latencies),
        "errors": sum(1 for kind, _ in kept if kind == "error_rate"),
        "conflicts": sum(1 for kind, _ in kept if kind == "stock_conflicts"),
        "throttled": sum(1 for kind, _ in kept if kind == "throttled_requests"),
        "avg": sum(latencies) / len(latencies) if latencies else None,
        "p95": exact_quantile(latencies, 0.95),
        "p99": exact_quantile(latencies, 0.99),
    }


def test_rollup_answers_equal_raw_rows(rows, engine):
    """Plain-SQL rows, future rows, old rows, updates and deletes all count exactly as raw."""
    rng = random.Random(5)
    batch = []
    for _ in range(3000):
        at = NOW - timedelta(seconds=rng.uniform(0, 10 * 86400))
        kind = rng.choice(["avg_response_time"] * 6 + ["error_rate", "stock_conflicts"])
        value = rng.lognormvariate(3, 1) if kind == "avg_response_time" else 1.0
        path = rng.choice(["/api/products/", "/api/orders/", None])
        meta = {"path": path, "status_code": rng.choice([200, 201, 404, 503])} if path else None
        batch.append((kind, value, meta, at))
    batch.append(("avg_response_time", 99999.0, {"path": "/late/"}, NOW + timedelta(seconds=5)))
    batch.append(("throttled_requests", 1.0, None, NOW - timedelta(minutes=1)))
    rows.metrics(batch)
    rows.execute("DELETE FROM retail_metric WHERE id % 7 = 0")
    rows.execute("UPDATE retail_metric SET value = value * 2 WHERE id % 11 = 0")
    expected = _raw_expectation(engine, 7)
    with engine.connect() as conn:
        kpis = metrics_summary(conn, days=7, now=NOW).kpis
    assert kpis["requests_total"] == expected["requests"]
    assert kpis["errors_total"] == expected["errors"]
    assert kpis["stock_conflicts"] == expected["conflicts"]
    assert kpis["throttled_requests"] == expected["throttled"] == 1
    assert kpis["avg_response_time_ms"] == pytest.approx(expected["avg"], abs=5e-4)
    assert kpis["p95_response_time_ms"] == pytest.approx(expected["p95"], rel=0.01)
    assert kpis["p99_response_time_ms"] == pytest.approx(expected["p99"], rel=0.01)
    assert kpis["error_rate"] == pytest.approx(
        100 * expected["errors"] / expected["requests"], abs=1e-3
    )


def test_business_kpis_and_daily_series(rows, engine):
    """Orders paid, refunds made and payment success come from the business tables, per UTC day."""
    yesterday = NOW - timedelta(days=1)
    paid_today = rows.order(paid_at=NOW - timedelta(minutes=5))
    rows.order(paid_at=yesterday)
    refunded = rows.order(status="refunded", paid_at=yesterday)
    rows.order(status="payment_failed")
    rows.order(paid_at=NOW - timedelta(days=30))
    rows.refund(refunded, completed_at=NOW - timedelta(minutes=1))
    at = NOW - timedelta(minutes=2)
    rows.payment(paid_today, status="succeeded", at=at)
    for status in ["declined", "failed", "unknown", "rejected_open_circuit", "pending"]:
        rows.payment(rows.order(status="payment_failed"), status=status, at=at)
    with engine.connect() as conn:
        report = metrics_summary(conn, days=7, now=NOW)
    kpis = report.kpis
    assert kpis["orders_total"] == 3
    assert kpis["orders_per_day"] == pytest.approx(3 / 7, abs=1e-3)
    assert kpis["refunds_total"] == 1
    # Succeeded / (succeeded + failed + unknown): the decline is the customer's answer.
    assert kpis["payment_success_rate"] == pytest.approx(100 / 3, abs=1e-3)
    assert kpis["payment_decline_rate"] == 25.0
    assert [day["date"] for day in report.daily][-1] == NOW.date().isoformat()
    assert len(report.daily) == 7
    by_date = {day["date"]: day for day in report.daily}
    assert by_date[yesterday.date().isoformat()]["orders"] == 2
    assert by_date[NOW.date().isoformat()]["refunds"] == 1


def test_payment_success_rate_counts_service_failures_not_declines_nor_rejections(rows, engine):
    """Success rate = succeeded / (succeeded + failed + unknown); declines have their own rate."""
    statuses = ["succeeded"] * 3 + ["unknown", "declined", "declined", "rejected_open_circuit"]
    for status in statuses:
        order_id = rows.order(paid_at=NOW - timedelta(minutes=1))
        rows.payment(order_id, status=status, at=NOW - timedelta(minutes=1))
    with engine.connect() as conn:
        kpis = metrics_summary(conn, days=1, now=NOW).kpis
    assert kpis["payment_success_rate"] == 75.0
    assert kpis["payment_decline_rate"] == pytest.approx(100 * 2 / 6, abs=1e-3)


def test_empty_window_gives_zeros_and_nulls(engine):
    """With no rows every count is 0 and every rate or latency is null (SPEC §4)."""
    with engine.connect() as conn:
        document = metrics_summary(conn, days=3, now=NOW).to_document()
    assert document["window"]["days"] == 3
    assert document["kpis"] == {
        "orders_total": 0,
        "orders_per_day": 0.0,
        "refunds_total": 0,
        "refunds_per_day": 0.0,
        "requests_total": 0,
        "errors_total": 0,
        "error_rate": 0.0,
        "payment_success_rate": None,
        "payment_decline_rate": None,
        "avg_response_time_ms": None,
        "p95_response_time_ms": None,
        "p99_response_time_ms": None,
        "circuit_breaker_state": None,
        "stock_conflicts": 0,
        "throttled_requests": 0,
    }
    assert [set(day) for day in document["daily"]] == [
        {"date", "orders", "refunds", "requests", "errors"}
    ] * 3
    assert document["slowest_routes"] == document["error_routes"] == []


def test_breaker_state_is_the_latest_change(rows, engine):
    """circuit_breaker_state is the `to` state of the latest row before the window's end."""
    rows.metric(
        "circuit_breaker_state", 1, {"from": "closed", "to": "open"}, NOW - timedelta(minutes=3)
    )
    rows.metric(
        "circuit_breaker_state", 2, {"from": "open", "to": "half_open"}, NOW - timedelta(minutes=2)
    )
    rows.metric(
        "circuit_breaker_state",
        0,
        {"from": "half_open", "to": "closed"},
        NOW + timedelta(minutes=1),
    )
    with engine.connect() as conn:
        assert metrics_summary(conn, days=1, now=NOW).kpis["circuit_breaker_state"] == "half_open"


def test_rows_written_with_the_iso_t_separator_count_as_any_other(rows, engine, database_url):
    """SQLite rows stamped strftime('%Y-%m-%dT%H:%M:%f') count by time, not by their text.

    On today's date every 'T' row sorts after every ' ' row as text, so they were all
    taken for rows stamped after `now` and subtracted: 52 requests where 62 were recorded.
    """
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL stores timestamptz values, not text")
    at = NOW - timedelta(minutes=30)
    rows.metrics([("avg_response_time", 5.0, {"route": "/django/"}, at)] * 52)
    insert = (
        "INSERT INTO retail_metric (metric_type, value, metadata, recorded_at) "
        "VALUES (:kind, :value, :metadata, strftime('%Y-%m-%dT%H:%M:%f', :at))"
    )
    text = "%Y-%m-%d %H:%M:%S"
    for minutes in range(10):
        stamp = (NOW - timedelta(minutes=minutes + 1)).strftime(text)
        rows.execute(insert, kind="avg_response_time", value=7.0, metadata="{}", at=stamp)
    future = (NOW + timedelta(minutes=5)).strftime(text)
    rows.execute(insert, kind="avg_response_time", value=9.0, metadata="{}", at=future)
    # The breaker opened (a ' ' row) and closed a minute later (a 'T' row): it is closed.
    rows.metric("circuit_breaker_state", 1, {"to": "open"}, NOW - timedelta(minutes=2))
    closed = '{"to": "closed"}'
    stamp = (NOW - timedelta(minutes=1)).strftime(text)
    rows.execute(insert, kind="circuit_breaker_state", value=0.0, metadata=closed, at=stamp)
    with engine.connect() as conn:
        kpis = metrics_summary(conn, days=1, now=NOW).kpis
        raw = conn.execute(
            select(t.metric.c.recorded_at).where(t.metric.c.metric_type == "avg_response_time")
        ).scalars()
        assert sum(1 for recorded_at in raw if recorded_at < NOW) == 62
    assert kpis["requests_total"] == 62
    assert kpis["avg_response_time_ms"] == pytest.approx((52 * 5 + 10 * 7) / 62, abs=1e-3)
    assert kpis["circuit_breaker_state"] == "closed"


def test_slowest_and_error_routes(rows, engine):
    """Routes are ranked by p95 and by error count."""
    at = NOW - timedelta(minutes=1)
    rows.metrics(
        [("avg_response_time", 500.0, {"route": "/slow/", "path": "/slow/1"}, at)] * 3
        + [("avg_response_time", 5.0, {"path": "/fast/"}, at)] * 5
        + [("error_rate", 1.0, {"path": "/fast/", "status_code": 404}, at)] * 2
    )
    with engine.connect() as conn:
        report = metrics_summary(conn, days=1, now=NOW)
    assert [r.route for r in report.slowest_routes] == ["/slow/", "/fast/"]
    assert report.slowest_routes[0].p95_ms == pytest.approx(500, rel=0.01)
    assert [(r.route, r.errors) for r in report.error_routes] == [("/fast/", 2)]


def test_days_below_one_is_a_usage_error(engine):
    """--days 0 is refused."""
    with engine.connect() as conn, pytest.raises(UsageError):
        metrics_summary(conn, days=0)
