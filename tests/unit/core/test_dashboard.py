"""The live dashboard's read model: minute and hour points, the breaker's bands, deltas."""

from datetime import UTC, datetime, timedelta

import pytest

from retailctl.core.dashboard import (
    breaker_timeline,
    dashboard_delta,
    dashboard_snapshot,
    span_parse,
)
from retailctl.core.errors import UsageError

NOW = datetime(2026, 12, 3, 12, 30, 40, tzinfo=UTC)


def _latency(rows, minute: datetime, values: list[float], status: int = 200) -> None:
    rows.metrics(
        ("avg_response_time", value, {"route": "api/orders/", "status_code": status}, minute)
        for value in values
    )


def test_minute_points_count_requests_errors_latency_and_orders(rows, engine):
    """Each minute of the range is one point, empty minutes zeros, partial minute last."""
    first = datetime(2026, 12, 3, 12, 20, 5, tzinfo=UTC)
    _latency(rows, first, [10.0] * 98 + [500.0, 900.0])
    _latency(rows, first + timedelta(minutes=3, seconds=30), [40.0, 40.0], status=503)
    rows.metric(
        "error_rate",
        1,
        {"route": "api/orders/", "status_code": 503, "request_id": "req-1", "fingerprint": "f1"},
        first + timedelta(minutes=3, seconds=31),
    )
    rows.order(paid_at=first + timedelta(seconds=20))
    rows.order(status="payment_failed", paid_at=first + timedelta(seconds=21))
    with engine.connect() as conn:
        document = dashboard_snapshot(
            conn, start=NOW - timedelta(minutes=15), end=NOW, resolution="minute"
        )
    points = {p["t"]: p for p in document["points"]}
    assert len(document["points"]) == 16  # 12:15 .. 12:30, the last one partial
    assert document["points"][0]["t"] == "2026-12-03T12:15:00+00:00"
    busy = points["2026-12-03T12:20:00+00:00"]
    assert (busy["requests"], busy["errors"], busy["orders"]) == (100, 0, 1)
    # The log-bucket sketch answers within its 2 % relative error.
    assert busy["p50"] == pytest.approx(10.0, rel=0.03)
    assert busy["p99"] == pytest.approx(500.0, rel=0.03)
    failing = points["2026-12-03T12:23:00+00:00"]
    assert (failing["requests"], failing["errors"], failing["error_rate"]) == (2, 1, 50.0)
    quiet = points["2026-12-03T12:25:00+00:00"]
    assert (quiet["requests"], quiet["p95"], quiet["error_rate"]) == (0, None, None)
    [error] = document["errors"]
    assert (error["request_id"], error["fingerprint"], error["status_code"]) == ("req-1", "f1", 503)


def test_hour_points_match_the_minute_points_they_hold(rows, engine):
    """An hour point counts exactly the rows of its minutes."""
    base = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    for minute in range(0, 60, 7):
        _latency(rows, base + timedelta(minutes=minute, seconds=3), [float(minute + 1)] * 3)
    with engine.connect() as conn:
        hours = dashboard_snapshot(
            conn, start=NOW - timedelta(hours=6), end=NOW, resolution="hour"
        )["points"]
        minutes = dashboard_snapshot(
            conn, start=base, end=base + timedelta(hours=1), resolution="minute"
        )["points"]
    assert [p["t"][11:13] for p in hours] == ["06", "07", "08", "09", "10", "11", "12"]
    ten = next(p for p in hours if p["t"].startswith("2026-12-03T10"))
    assert ten["requests"] == sum(p["requests"] for p in minutes) == 27
    assert len(minutes) == 60


def test_breaker_bands_start_with_the_state_before_the_range(rows, engine):
    """The band at the range's start is the last change before it; each change starts one."""
    start = NOW - timedelta(minutes=30)
    rows.metric("circuit_breaker_state", 0, {"from": "open", "to": "closed"}, start - timedelta(1))
    changes = [(20, "closed", "open"), (19, "open", "half-open"), (18, "half-open", "closed")]
    for minutes, before, after in changes:
        at = NOW - timedelta(minutes=minutes)
        rows.metric("circuit_breaker_state", 1, {"from": before, "to": after}, at)
    with engine.connect() as conn:
        bands = breaker_timeline(conn, start=start, end=NOW)
        empty = breaker_timeline(
            conn, start=start - timedelta(days=3), end=start - timedelta(days=2)
        )
    assert [band["state"] for band in bands] == ["closed", "open", "half-open", "closed"]
    assert bands[0]["start"] == start.isoformat() and bands[-1]["end"] == NOW.isoformat()
    assert all(a["end"] == b["start"] for a, b in zip(bands, bands[1:], strict=False))
    assert [band["state"] for band in empty] == ["unknown"]


def test_a_delta_holds_only_what_changed_since(rows, engine):
    """The delta re-reads the last minutes (late rows included), not the whole range."""
    old = NOW - timedelta(minutes=10)
    rows.metric("error_rate", 1, {"status_code": 500, "request_id": "old"}, old)
    rows.metric(
        "error_rate", 1, {"status_code": 500, "request_id": "late"}, NOW - timedelta(seconds=8)
    )
    with engine.connect() as conn:
        delta = dashboard_delta(
            conn, since=NOW - timedelta(seconds=2), now=NOW, resolution="minute"
        )
    assert [e["request_id"] for e in delta["errors"]] == ["late"]
    assert [p["t"][11:16] for p in delta["points"]] == ["12:30"]
    assert delta["points"][0]["errors"] == 1
    assert "anomalies" not in delta  # judged on complete hours: none changed within one


@pytest.mark.parametrize(
    ("range_text", "resolution", "expected"),
    [
        (None, None, ("1h", "minute")),
        ("15m", None, ("15m", "minute")),
        ("24h", None, ("1d", "hour")),
        ("24h", "minute", ("1d", "minute")),
        ("30d", None, ("30d", "hour")),
    ],
)
def test_span_defaults_to_minutes_up_to_six_hours(range_text, resolution, expected):
    """Ranges of 15m to 30d; minute points by default up to 6h, on request up to a day."""
    span = span_parse(range_text, resolution)
    assert (span.range_text, span.resolution) == expected


@pytest.mark.parametrize(
    ("range_text", "resolution"),
    [("5m", None), ("31d", None), ("soon", None), ("7d", "minute"), ("1h", "second")],
)
def test_span_refuses_what_no_chart_can_show(range_text, resolution):
    """Too short, too long, not a duration, or too many minute points: a usage error."""
    with pytest.raises(UsageError):
        span_parse(range_text, resolution)


def test_an_hour_delta_redraws_the_current_hour(rows, engine):
    """At hour resolution a delta holds the hour being written, counted whole."""
    _latency(rows, datetime(2026, 12, 3, 12, 1, tzinfo=UTC), [5.0] * 4)
    _latency(rows, NOW - timedelta(seconds=1), [5.0])
    with engine.connect() as conn:
        delta = dashboard_delta(conn, since=NOW - timedelta(seconds=30), now=NOW, resolution="hour")
    assert [(p["t"], p["requests"]) for p in delta["points"]] == [("2026-12-03T12:00:00+00:00", 5)]
