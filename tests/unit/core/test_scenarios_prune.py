"""Scenario verdicts A1/A2 and batched pruning over the read model."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from retailctl.core import tables as t
from retailctl.core.metrics import metrics_summary
from retailctl.core.prune import metrics_prune
from retailctl.core.scenarios import FAIL, PASS, scenarios_failed, scenarios_verify

NOW = datetime.now(UTC).replace(microsecond=0)


def _verify(engine):
    with engine.connect() as conn:
        return scenarios_verify(conn, days=7, now=NOW)


def test_no_data_is_reported_not_failed(engine):
    """An empty shop PASSes both scenarios, flagged no_data: no data is not a failure."""
    document = _verify(engine)
    for name in ("A1", "A2"):
        assert (document[name]["status"], document[name]["no_data"]) == (PASS, True)
    assert not scenarios_failed(document)


def test_a1_passes_with_a_balanced_ledger_and_reports_conflicts(rows, engine):
    """Stock conflicts are evidence of the guard working; a balanced ledger passes."""
    product = rows.product(stock=8)
    rows.movement(product, 10, "seed")
    rows.movement(product, -2, "sale")
    rows.metric("stock_conflicts", 1, {"product_id": product}, NOW - timedelta(minutes=1))
    a1 = _verify(engine)["A1"]
    assert a1["status"] == PASS
    assert a1["stock_conflicts"] == 1
    assert a1["oversold_products"] == 0
    assert a1["ledger_mismatched_products"] == 0


def test_a1_fails_when_the_ledger_goes_negative(rows, engine):
    """A product whose movements sum below zero was oversold."""
    product = rows.product(stock=0)
    rows.movement(product, 1, "seed")
    rows.movement(product, -2, "sale")
    a1 = _verify(engine)["A1"]
    assert a1["status"] == FAIL
    assert a1["oversold_products"] == 1
    assert a1["ledger_mismatched_products"] == 1


def test_a2_verdicts_from_success_rate_and_fast_fail_p99(rows, engine):
    """A2 passes at >= 95% success with fast fails under 100 ms, and fails on slow fast-fails."""
    at = NOW - timedelta(minutes=5)
    for _ in range(19):
        rows.payment(rows.order(paid_at=at), status="succeeded", at=at)
    rows.payment(rows.order(status="payment_failed"), status="failed", at=at)
    # A declined card is no failure of the payment service: it leaves the rate alone.
    rows.payment(rows.order(status="payment_failed"), status="declined", at=at)
    rows.metrics([("payment_fast_fail", ms, {"reason": "circuit_open"}, at) for ms in (1, 2, 3)])
    rejected = rows.order(status="payment_failed")
    rows.payment(rejected, status="rejected_open_circuit", latency_ms=4.0, at=at)
    a2 = _verify(engine)["A2"]
    assert (a2["status"], a2["payment_success_rate"]) == (PASS, 95.0)
    assert a2["fast_fail_p99_ms"] == pytest.approx(4.0, rel=0.01)
    assert (a2["fast_fails"], a2["fast_fails_after_reservation"]) == (4, 1)
    rows.metric("payment_fast_fail", 250.0, {"reason": "circuit_open"}, at)
    document = _verify(engine)
    assert document["A2"]["status"] == FAIL
    assert document["A2"]["fast_fail_p99_ms"] == pytest.approx(250.0, rel=0.01)
    assert scenarios_failed(document)


def _metric_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.metric)).scalar_one()


def test_prune_deletes_exactly_the_old_rows_in_batches_and_keeps_rollups_exact(rows, engine):
    """Rows before the cut-off go, in batches; newer rows and the rollup's answers stay right."""
    old = [
        ("avg_response_time", 10.0, None, NOW - timedelta(days=40, minutes=i)) for i in range(25)
    ]
    young = [
        ("avg_response_time", 20.0, None, NOW - timedelta(days=1, minutes=i)) for i in range(5)
    ]
    rows.metrics(old + young)
    dry = metrics_prune(engine, older_than_days=30, dry_run=True, now=NOW)
    assert (dry.matched, dry.deleted, _metric_count(engine)) == (25, 0, 30)
    result = metrics_prune(engine, older_than_days=30, batch_size=10, now=NOW)
    assert (result.matched, result.deleted, result.batches) == (25, 25, 3)
    assert _metric_count(engine) == 5
    again = metrics_prune(engine, older_than_days=30, batch_size=10, now=NOW)
    assert (again.matched, again.deleted) == (0, 0)
    with engine.connect() as conn:
        kpis = metrics_summary(conn, days=60, now=NOW).kpis
        leftover = conn.execute(
            select(func.count()).select_from(t.metric_rollup).where(t.metric_rollup.c.samples <= 0)
        ).scalar_one()
    assert kpis["requests_total"] == 5
    assert kpis["avg_response_time_ms"] == pytest.approx(20.0)
    assert leftover == 0
