"""Verdicts of quality scenarios A1 (no oversell) and A2 (payment resilience), SPEC §4."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, inspect, select

from retailctl.core import tables as t
from retailctl.core.metrics import (
    ATTEMPTED_PAYMENT_STATUSES,
    CIRCUIT_BREAKER_STATE,
    STOCK_CONFLICTS,
    payment_success_rate,
    payments_by_status,
)
from retailctl.core.sketch import bucket_of, quantile
from retailctl.core.window import Window, window_for

# SPEC §4 knows two verdicts. A scenario without evidence is not failed: it PASSes with
# `no_data: true`, so cron stays green on a quiet shop and a reader can still tell.
PASS, FAIL = "PASS", "FAIL"
# Recorded by orders.services for each checkout an OPEN breaker turned away (value: ms).
PAYMENT_FAST_FAIL = "payment_fast_fail"
MIN_SUCCESS_RATE = 95.0
MAX_FAST_FAIL_P99_MS = 100.0


def _metric_histogram(conn: Connection, window: Window, metric_type: str) -> dict[int, int]:
    """Return the value-bucket counts of one metric type in the window (rollup minus future)."""
    r, m = t.metric_rollup, t.metric
    histogram: dict[int, int] = {}
    rolled = (
        select(r.c.bucket, func.sum(r.c.samples))
        .where(
            r.c.metric_type == metric_type,
            r.c.day >= window.first_day,
            r.c.day <= window.last_day,
        )
        .group_by(r.c.bucket)
    )
    for bucket, samples in conn.execute(rolled):
        histogram[bucket] = histogram.get(bucket, 0) + int(samples)
    future = select(m.c.value).where(
        m.c.metric_type == metric_type,
        m.c.recorded_at >= window.end,
        m.c.recorded_at < window.day_after,
    )
    for (value,) in conn.execute(future):
        histogram[bucket_of(value)] = histogram.get(bucket_of(value), 0) - 1
    return histogram


def _stock_conflicts(conn: Connection, window: Window) -> int:
    return sum(_metric_histogram(conn, window, STOCK_CONFLICTS).values())


def scenario_a1(conn: Connection, window: Window) -> dict[str, Any]:
    """A1: no product's stock is negative and no oversell happened (ledger when present)."""
    p = t.product
    products = conn.execute(select(func.count()).select_from(p)).scalar_one()
    negative = conn.execute(select(func.count()).where(p.c.stock < 0)).scalar_one()
    evidence: dict[str, Any] = {
        "products": int(products),
        "negative_stock_products": int(negative),
        "stock_conflicts": _stock_conflicts(conn, window),
    }
    oversold = int(negative)
    if inspect(conn).has_table(t.stock_movement.name):
        s = t.stock_movement
        ledger = (
            select(s.c.product_id, func.sum(s.c.delta).label("balance"))
            .group_by(s.c.product_id)
            .subquery()
        )
        negative_ledger = conn.execute(
            select(func.count()).select_from(ledger).where(ledger.c.balance < 0)
        ).scalar_one()
        mismatched = conn.execute(
            select(func.count())
            .select_from(p.outerjoin(ledger, ledger.c.product_id == p.c.id))
            .where(func.coalesce(ledger.c.balance, 0) != p.c.stock)
        ).scalar_one()
        oversold += int(negative_ledger)
        evidence["ledger_negative_products"] = int(negative_ledger)
        evidence["ledger_mismatched_products"] = int(mismatched)
    else:
        mismatched = 0
        evidence["ledger_negative_products"] = None
        evidence["ledger_mismatched_products"] = None
    evidence["oversold_products"] = oversold
    status = FAIL if oversold or mismatched else PASS
    return {"status": status, "no_data": products == 0, **evidence}


def _breaker_openings(conn: Connection, window: Window) -> int:
    m = t.metric
    rows = conn.execute(
        select(m.c.metadata).where(
            m.c.metric_type == CIRCUIT_BREAKER_STATE,
            m.c.recorded_at >= window.start,
            m.c.recorded_at < window.end,
        )
    )
    return sum(
        1
        for (metadata,) in rows
        if isinstance(metadata, dict) and str(metadata.get("to", "")).lower() == "open"
    )


def scenario_a2(conn: Connection, window: Window) -> dict[str, Any]:
    """A2: payment success rate >= 95% and fast-fail p99 < 100 ms while the breaker is OPEN.

    The fast-fail p99 is read off the log-bucket histogram: within 1% of the exact value.
    """
    by_status = payments_by_status(conn, window)
    rate = payment_success_rate(by_status)
    # Fast-fail evidence: the recorder's payment_fast_fail rows, plus any payment row
    # rejected by the breaker after admission (its latency_ms).
    histogram = _metric_histogram(conn, window, PAYMENT_FAST_FAIL)
    p = t.payment
    rejected = select(p.c.latency_ms).where(
        p.c.status == "rejected_open_circuit",
        p.c.created_at >= window.start,
        p.c.created_at < window.end,
        p.c.latency_ms.is_not(None),
    )
    for (latency,) in conn.execute(rejected):
        histogram[bucket_of(latency)] = histogram.get(bucket_of(latency), 0) + 1
    fast_fails = sum(count for count in histogram.values() if count > 0)
    fast_fail_p99 = quantile(histogram, 0.99)
    checks = []
    if rate is not None:
        checks.append(rate >= MIN_SUCCESS_RATE)
    if fast_fail_p99 is not None:
        checks.append(fast_fail_p99 < MAX_FAST_FAIL_P99_MS)
    return {
        "status": PASS if all(checks) else FAIL,
        "no_data": not checks,
        "payment_success_rate": rate,
        "fast_fail_p99_ms": None if fast_fail_p99 is None else round(fast_fail_p99, 3),
        "payments_attempted": sum(by_status.get(s, 0) for s in ATTEMPTED_PAYMENT_STATUSES),
        "payments_succeeded": by_status.get("succeeded", 0),
        "payments_declined": by_status.get("declined", 0),
        "payments_failed": by_status.get("failed", 0),
        "payments_unknown": by_status.get("unknown", 0),
        # Checkouts the OPEN breaker turned away (the p99's samples), and of those the
        # ones turned away after their order was reserved (payment rejected_open_circuit).
        "fast_fails": fast_fails,
        "fast_fails_after_reservation": by_status.get("rejected_open_circuit", 0),
        "breaker_openings": _breaker_openings(conn, window),
        "min_success_rate": MIN_SUCCESS_RATE,
        "max_fast_fail_p99_ms": MAX_FAST_FAIL_P99_MS,
    }


def scenarios_verify(
    conn: Connection, *, days: int, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Return SPEC §4's `scenarios --json` document for the last `days` days."""
    window = window_for(days=days, now=now)
    return {"A1": scenario_a1(conn, window), "A2": scenario_a2(conn, window)}


def scenarios_failed(document: dict[str, dict[str, Any]]) -> bool:
    """Return True when any scenario's verdict is FAIL (no data is not a failure)."""
    return any(result["status"] == FAIL for result in document.values())
