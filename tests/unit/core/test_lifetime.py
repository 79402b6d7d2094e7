"""Lifetime totals: prune moves rows from the rollup into the pruned totals, never lowering them."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retailctl.core import tables as t
from retailctl.core.lifetime import lifetime_totals
from retailctl.core.prune import metrics_prune
from retailctl.core.sketch import bucket_of, count_at_most

NOW = datetime.now(UTC).replace(microsecond=0)


def _totals(engine):
    with engine.connect() as conn:
        return lifetime_totals(conn)


def _traffic(rows, *, days_ago: int) -> None:
    """Rows of every kind, some with metadata the rollup has to make sense of."""
    at = NOW - timedelta(days=days_ago)
    rows.metrics(
        [
            ("avg_response_time", 3.0, {"route": "a/", "status_code": 200}, at),
            ("avg_response_time", 40.0, {"route": "a/", "status_code": 201}, at),
            ("avg_response_time", 700.0, {"route": "b/", "status_code": 503}, at),
            ("avg_response_time", 0.0, {"path": "/c/", "status_code": "404"}, at),
            ("avg_response_time", 12.0, None, at),
            ("avg_response_time", 2e15, {"status_code": 302}, at),
            ("error_rate", 1, {"status_code": 503}, at),
            ("error_rate", 1, {"status_code": 404}, at),
            ("stock_conflicts", 1, {}, at),
            ("throttled_requests", 1, {}, at),
            ("payment_fast_fail", 2.5, {"reason": "circuit_open"}, at),
        ]
    )


def test_prune_keeps_every_lifetime_total(rows, engine):
    """Pruning every row leaves counts, classes, latency buckets and sums exactly as before."""
    _traffic(rows, days_ago=40)
    _traffic(rows, days_ago=1)
    before = _totals(engine)
    assert before.rows_by_type["avg_response_time"] == 12
    assert before.requests_by_status_class == {"2xx": 4, "5xx": 2, "4xx": 2, "3xx": 2, "": 2}
    assert before.latency_buckets[bucket_of(40.0)] == 2
    assert before.latency_sum_ms == pytest.approx(2 * (3 + 40 + 700 + 0 + 12 + 2e15))
    metrics_prune(engine, older_than_days=30, batch_size=4, now=NOW)
    assert _totals(engine) == before
    metrics_prune(engine, older_than_days=0, batch_size=3, now=NOW + timedelta(seconds=1))
    with engine.connect() as conn:
        kept = conn.execute(select(func.count()).select_from(t.metric)).scalar_one()
        rolled = conn.execute(select(func.count()).select_from(t.metric_rollup)).scalar_one()
    assert (kept, rolled) == (0, 0)
    assert _totals(engine) == before


def test_rows_recorded_after_a_prune_add_to_the_pruned_totals(rows, engine):
    """New rows count on top of what was pruned."""
    _traffic(rows, days_ago=5)
    metrics_prune(engine, older_than_days=0, now=NOW + timedelta(seconds=1))
    _traffic(rows, days_ago=0)
    totals = _totals(engine)
    assert totals.rows_by_type["error_rate"] == 4
    assert totals.rows_by_type["payment_fast_fail"] == 2
    assert totals.requests_by_status_class["5xx"] == 2


def test_a_dry_run_moves_nothing(rows, engine):
    """--dry-run deletes nothing and adds nothing to the pruned totals."""
    _traffic(rows, days_ago=40)
    metrics_prune(engine, older_than_days=30, dry_run=True, now=NOW)
    with engine.connect() as conn:
        pruned = conn.execute(select(func.count()).select_from(t.metric_pruned)).scalar_one()
    assert pruned == 0


def test_concurrent_prunes_count_each_row_once(rows, engine):
    """Two prunes racing over the same rows fold each deleted row exactly once."""
    for days_ago in range(31, 41):
        _traffic(rows, days_ago=days_ago)
    before = _totals(engine)
    errors: list[BaseException] = []

    def prune():
        try:
            metrics_prune(engine, older_than_days=30, batch_size=7, now=NOW)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=prune) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert _totals(engine) == before


def test_count_at_most_never_counts_a_value_above_the_limit():
    """A value counts under a limit only when it is certainly within it."""
    values = [0.0, 4.9, 5.0, 5.04, 9.99, 10.0, 10.3, 1e16]
    histogram: dict[int, int] = {}
    for value in values:
        histogram[bucket_of(value)] = histogram.get(bucket_of(value), 0) + 1
    for limit in (5.0, 10.0, 100.0):
        assert count_at_most(histogram, limit) <= sum(1 for v in values if v <= limit)
        # Within one bucket (2%) of the limit, nothing is missed.
        assert count_at_most(histogram, limit) >= sum(1 for v in values if v <= limit / 1.0203)
    assert count_at_most(histogram, 1e15) == len(values) - 1
    assert count_at_most(histogram, float("inf")) == len(values)
    assert count_at_most(histogram, 0.0) == 0
