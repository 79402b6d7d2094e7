"""Seasonal anomaly detection: found on synthetic weeks in a real database, robust to outliers."""

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from retailctl.core.anomalies import (
    Z_THRESHOLD,
    anomalies_find,
    anomaly_check,
    last_complete_hour,
    reference_hours,
)

# Monday 2026-11-30, 23:30 UTC: the last complete hour is Monday 22:00.
NOW = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)
SPIKE = MONDAY + timedelta(hours=3)  # a quiet night hour, four times busier
DROP = MONDAY + timedelta(hours=14)  # a busy afternoon hour, a quarter of its traffic
STEP = [MONDAY + timedelta(hours=h) for h in (18, 19, 20)]  # p95 three times higher


def _shape(moment: datetime) -> float:
    """Daily rhythm (night trough, lunch and evening peaks), quieter weekends, Monday ramp."""
    hour = moment.hour + 0.5
    shape = (
        0.15 + math.exp(-(((hour - 12.5) / 3.5) ** 2)) + 0.6 * math.exp(-(((hour - 20) / 2) ** 2))
    )
    if moment.weekday() == 0:
        shape += 0.6 * math.exp(-(((hour - 9) / 1.5) ** 2))  # the ordinary Monday morning
    return shape * (0.6 if moment.weekday() >= 5 else 1.0)


def _weeks(rows, *, weeks: int, seed: int = 5) -> None:
    """Write `weeks` weeks of hourly traffic up to NOW, with the injected anomalies."""
    rng = random.Random(seed)
    start = MONDAY - timedelta(weeks=weeks - 1)
    batch = []
    hour = start
    while hour < last_complete_hour(NOW) + timedelta(hours=1):
        expected = 120 * _shape(hour) * rng.lognormvariate(0, 0.05)
        latency = 40 * rng.lognormvariate(0, 0.04)
        if hour == SPIKE:
            expected *= 4
        if hour == DROP:
            expected /= 4
        if hour in STEP:
            latency *= 3
        requests = max(1, round(rng.gauss(expected, math.sqrt(expected))))
        for index in range(requests):
            at = hour + timedelta(seconds=3600 * index / requests)
            value = latency * rng.lognormvariate(0, 0.3)
            batch.append(("avg_response_time", value, {"path": "/api/x/", "status_code": 200}, at))
            if rng.random() < 0.01:
                batch.append(("error_rate", 1.0, {"path": "/api/x/", "status_code": 500}, at))
        hour += timedelta(hours=1)
    rows.metrics(batch)


def test_spike_drop_and_latency_step_are_found_and_the_monday_ramp_is_not(engine, rows):
    """On four seeded weeks, the injected hours stand out and nothing else does."""
    _weeks(rows, weeks=4)
    with engine.connect() as conn:
        found = anomalies_find(conn, days=1, now=NOW)
    flagged = {(v.series, v.hour) for v in found}
    assert ("requests", SPIKE) in flagged
    assert ("requests", DROP) in flagged
    assert {("p95", hour) for hour in STEP} <= flagged
    injected = {SPIKE, DROP, *STEP}
    assert {v.hour for v in found} <= injected, [v.to_document() for v in found]
    spike = next(v for v in found if (v.series, v.hour) == ("requests", SPIKE))
    assert spike.basis == "weekly" and spike.references == 3
    assert spike.observed > spike.high and spike.direction == "above"
    drop = next(v for v in found if (v.series, v.hour) == ("requests", DROP))
    assert drop.observed < drop.low and drop.direction == "below"


def test_short_history_falls_back_to_previous_days(engine, rows):
    """With under three weeks of history the band comes from the same hour of previous days."""
    _weeks(rows, weeks=2)
    with engine.connect() as conn:
        found = anomalies_find(conn, days=1, now=NOW)
    spike = next(v for v in found if (v.series, v.hour) == ("requests", SPIKE))
    assert spike.basis == "daily" and spike.references == 7


def test_no_history_judges_nothing(engine):
    """An empty database has no band and no anomaly."""
    with engine.connect() as conn:
        assert anomalies_find(conn, days=1, now=NOW) == []


def test_an_anomaly_in_the_history_does_not_widen_the_band():
    """One wild reference hour moves neither the expected value nor the band."""
    clean = anomaly_check("requests", 300, [100, 104, 97, 101, 99], hour=NOW, basis="weekly")
    dirty = anomaly_check("requests", 300, [100, 104, 97, 101, 1000], hour=NOW, basis="weekly")
    assert clean.anomalous and dirty.anomalous
    assert dirty.expected == pytest.approx(clean.expected, rel=0.05)
    assert dirty.high < 1.5 * clean.high


def test_counting_noise_keeps_quiet_hours_from_alarming():
    """Three errors where one is usual is not an anomaly; thirty is."""
    quiet = anomaly_check("errors", 3, [1, 1, 1, 1], hour=NOW, basis="weekly")
    loud = anomaly_check("errors", 30, [1, 1, 1, 1], hour=NOW, basis="weekly")
    assert not quiet.anomalous and loud.anomalous and loud.score > Z_THRESHOLD


def test_fewer_errors_than_usual_is_not_an_anomaly():
    """Error and latency series only alarm upwards."""
    verdict = anomaly_check("errors", 0, [50, 52, 48], hour=NOW, basis="weekly")
    assert verdict.score < -Z_THRESHOLD and not verdict.anomalous


def test_reference_hours_prefer_three_weeks_then_days():
    """Weekly references once three weeks exist (up to six), else up to seven days."""
    hour = MONDAY + timedelta(hours=9)
    weekly, basis = reference_hours(hour, hour - timedelta(weeks=10))
    assert basis == "weekly" and weekly[0] == hour - timedelta(weeks=1) and len(weekly) == 6
    daily, basis = reference_hours(hour, hour - timedelta(days=20))
    assert basis == "daily" and daily == [hour - timedelta(days=d) for d in range(1, 8)]


def test_complete_hours_are_read_once_then_served_from_the_hour_cache(engine, rows):
    """Judged hours are kept in retail_metric_hourly: a second pass needs no raw row."""
    from sqlalchemy import delete, func, select

    from retailctl.core import tables as t

    _weeks(rows, weeks=4)
    with engine.connect() as conn:
        first = anomalies_find(conn, days=1, now=NOW)
    with engine.begin() as conn:
        conn.execute(delete(t.metric).where(t.metric.c.recorded_at >= MONDAY - timedelta(weeks=3)))
        cached = conn.execute(select(func.count()).select_from(t.metric_hourly)).scalar_one()
    assert cached >= 24 * 4  # the day's 24 hours and their weekly (or daily) references
    with engine.connect() as conn:
        again = anomalies_find(conn, days=1, now=NOW)
    assert [v.to_document() for v in again] == [v.to_document() for v in first]
