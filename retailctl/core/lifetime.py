"""Lifetime totals for counters that never go down (Prometheus' `*_total`, SPEC §4).

Metric figures are the rollup (rows kept) plus `retail_metric_pruned` (rows `prune`
deleted, folded in by the same transaction), so pruning never lowers them; business
figures come from the business tables, which prune does not touch.
"""

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from retailctl.core import tables as t
from retailctl.core.metrics import AVG_RESPONSE_TIME, PAID_STATUSES


@dataclass(frozen=True)
class LifetimeTotals:
    """All-time counts of the shop, kept and pruned rows alike."""

    orders_paid: int
    refunds: int
    rows_by_type: dict[str, int]
    # Response-time rows (`avg_response_time`) by status class and by value bucket (ms).
    requests_by_status_class: dict[str, int]
    latency_buckets: dict[int, int]
    latency_sum_ms: float


def _metric_totals(conn: Connection) -> tuple[Counter, Counter]:
    """Return samples and value sums per (metric type, status class, bucket), kept + pruned."""
    samples: Counter = Counter()
    sums: Counter = Counter()
    for table in (t.metric_rollup, t.metric_pruned):
        key = (table.c.metric_type, table.c.status_class, table.c.bucket)
        query = select(*key, func.sum(table.c.samples), func.sum(table.c.value_sum)).group_by(*key)
        for metric_type, status_class, bucket, count, value_sum in conn.execute(query):
            samples[(metric_type, status_class, int(bucket))] += int(count)
            sums[(metric_type, status_class, int(bucket))] += float(value_sum or 0.0)
    return samples, sums


def lifetime_totals(conn: Connection) -> LifetimeTotals:
    """Return all-time totals from the business tables, the rollup and the pruned totals."""
    o, rf = t.order, t.refund
    samples, sums = _metric_totals(conn)
    by_type: Counter = Counter()
    classes: Counter = Counter()
    buckets: Counter = Counter()
    latency_sum = 0.0
    for (metric_type, status_class, bucket), count in samples.items():
        by_type[metric_type] += count
        if metric_type == AVG_RESPONSE_TIME:
            classes[status_class] += count
            buckets[bucket] += count
            latency_sum += sums[(metric_type, status_class, bucket)]
    orders_paid = conn.execute(
        select(func.count()).where(o.c.status.in_(PAID_STATUSES), o.c.paid_at.is_not(None))
    ).scalar_one()
    refunds = conn.execute(select(func.count()).where(rf.c.status == "succeeded")).scalar_one()
    return LifetimeTotals(
        orders_paid=int(orders_paid),
        refunds=int(refunds),
        rows_by_type=dict(by_type),
        requests_by_status_class={k: v for k, v in classes.items() if v > 0},
        latency_buckets={k: v for k, v in buckets.items() if v > 0},
        latency_sum_ms=latency_sum,
    )
