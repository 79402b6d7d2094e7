"""Hourly series of the anomaly detector: requests, errors, error rate, p95/p99, orders.

Only the hours asked for are read, each span through the (metric_type, recorded_at)
index, grouped by hour and latency bucket in SQL. The live dashboard's minute series
takes the same read path at minute width (`minute_stats`); minutes are never kept.
A complete hour (ended more than SETTLE ago) is computed once and kept in
`retail_metric_hourly`: judging an hour against six weeks of the same hour then reads
one hour of raw rows, not seven, and a day of verdicts reads a day. A cached hour does
not see rows written into it later.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Integer, and_, case, cast, func, select, text

from retailctl.core import tables as t
from retailctl.core.db import insert_ignoring_conflicts
from retailctl.core.metrics import AVG_RESPONSE_TIME, ERROR_RATE, PAID_STATUSES
from retailctl.core.sketch import HUGE_BUCKET, LN_GAMMA, ZERO_BUCKET, quantile

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)
# A complete hour is final a minute after it ends: late metric flushes have landed.
SETTLE = timedelta(minutes=1)


@dataclass(frozen=True)
class HourStats:
    """What one UTC hour held (or, read by `minute_stats`, one minute: `hour` is its start)."""

    hour: datetime
    requests: int = 0
    errors: int = 0
    orders: int = 0
    latency: dict[int, int] = field(default_factory=dict)  # bucket -> requests

    @property
    def error_rate(self) -> float | None:
        """Errors per request in percent; None without requests."""
        return 100.0 * self.errors / self.requests if self.requests else None

    def value(self, series: str) -> float | None:
        """Return the hour's value of one series (see rules.ANOMALY_SERIES)."""
        if series == "requests":
            return float(self.requests)
        if series == "errors":
            return float(self.errors)
        if series == "orders":
            return float(self.orders)
        if series == "error_rate":
            return self.error_rate
        if series == "p95":
            return quantile(self.latency, 0.95)
        if series == "p99":
            return quantile(self.latency, 0.99)
        raise ValueError(f"unknown series {series!r}")


def hour_floor(moment: datetime) -> datetime:
    """Return the start of the UTC hour holding `moment`."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _bucket_sql(value):
    """The rollup trigger's log bucket of a value (retailctl.core.sketch.bucket_of) in SQL."""
    return case(
        (
            and_(value > 1e-6, value < 1e15),
            cast(func.ceil(func.ln(value) / LN_GAMMA), Integer),
        ),
        (value >= 1e15, HUGE_BUCKET),
        else_=ZERO_BUCKET,
    )


def minute_floor(moment: datetime) -> datetime:
    """Return the start of the UTC minute holding `moment`."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _bucket_key_sql(column, dialect_name: str, width: timedelta):
    """Return the text key of the hour (or minute) holding a timestamp column's value."""
    if dialect_name == "postgresql":
        pattern = "YYYY-MM-DD HH24" if width == HOUR else "YYYY-MM-DD HH24:MI"
        return func.to_char(func.timezone("UTC", column), pattern)
    # Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC) on SQLite, other tools the ISO 'T'
    # form: either way the hour (13 characters) and the minute (16) are a prefix.
    return func.substr(column, 1, 13 if width == HOUR else 16)


def _bucket_of(key: str) -> datetime:
    minute = int(key[14:16]) if len(key) >= 16 else 0
    return datetime.fromisoformat(key[:10]).replace(hour=int(key[11:13]), minute=minute, tzinfo=UTC)


def _spans(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Merge sorted hour starts into contiguous [start, end) spans."""
    spans: list[list[datetime]] = []
    for hour in hours:
        if spans and spans[-1][1] == hour:
            spans[-1][1] = hour + HOUR
        else:
            spans.append([hour, hour + HOUR])
    return [(start, end) for start, end in spans]


def hourly_stats(
    conn: Connection, hours: Iterable[datetime], *, now: datetime
) -> dict[datetime, HourStats]:
    """Return the stats of each hour given by its start (hours without rows are zeros)."""
    wanted = sorted({hour_floor(hour) for hour in hours})
    stats = _cached(conn, wanted)
    missing = [hour for hour in wanted if hour not in stats]
    computed = _computed(conn, _spans(missing), HOUR, missing)
    settled = [s for s in computed.values() if s.hour + HOUR + SETTLE <= now]
    if settled:
        _cache(conn, settled, now)
    return {**stats, **computed}


def _cached(conn: Connection, hours: list[datetime]) -> dict[datetime, HourStats]:
    h = t.metric_hourly
    stats = {}
    for start in range(0, len(hours), 500):
        rows = conn.execute(select(h).where(h.c.hour.in_(hours[start : start + 500])))
        for row in rows:
            stats[row.hour] = HourStats(
                hour=row.hour,
                requests=int(row.requests),
                errors=int(row.errors),
                orders=int(row.orders),
                latency={int(bucket): int(n) for bucket, n in (row.latency or {}).items()},
            )
    return stats


def _cache(conn: Connection, stats: list[HourStats], now: datetime) -> None:
    """Keep settled hours; a concurrent run that kept one first wins (same numbers)."""
    statement = insert_ignoring_conflicts(conn.dialect.name, t.metric_hourly, key=["hour"])
    conn.execute(
        statement,
        [
            {
                "hour": s.hour,
                "requests": s.requests,
                "errors": s.errors,
                "orders": s.orders,
                "latency": {str(bucket): n for bucket, n in s.latency.items()},
                "computed_at": now,
            }
            for s in stats
        ],
    )
    conn.commit()


def minute_stats(conn: Connection, *, start: datetime, end: datetime) -> list[HourStats]:
    """Return the stats of every minute of [start, end), oldest first, from the raw rows."""
    first = minute_floor(start)
    minutes = [first + MINUTE * n for n in range(math.ceil((end - first) / MINUTE))]
    computed = _computed(conn, [(first, end)], MINUTE, minutes)
    return [computed[minute] for minute in minutes]


def _computed(
    conn: Connection,
    spans: list[tuple[datetime, datetime]],
    width: timedelta,
    wanted: list[datetime],
) -> dict[datetime, HourStats]:
    """Compute buckets of `width` from the raw rows, one indexed read per span."""
    m, o = t.metric, t.order
    dialect = conn.dialect.name
    requests: Counter = Counter()
    errors: Counter = Counter()
    orders: Counter = Counter()
    latency: dict[datetime, Counter] = defaultdict(Counter)
    metric_key = _bucket_key_sql(m.c.recorded_at, dialect, width)
    paid_key = _bucket_key_sql(o.c.paid_at, dialect, width)
    for start, end in spans:
        in_span = and_(m.c.recorded_at >= start, m.c.recorded_at < end)
        buckets = (
            select(metric_key, _bucket_sql(m.c.value), func.count())
            .where(m.c.metric_type == AVG_RESPONSE_TIME, in_span)
            .group_by(text("1"), text("2"))
        )
        for key, bucket, count in conn.execute(buckets):
            moment = _bucket_of(key)
            latency[moment][int(bucket)] += int(count)
            requests[moment] += int(count)
        counted = (
            select(metric_key, func.count())
            .where(m.c.metric_type == ERROR_RATE, in_span)
            .group_by(text("1"))
        )
        errors.update({_bucket_of(key): int(count) for key, count in conn.execute(counted)})
        paid = (
            select(paid_key, func.count())
            .where(o.c.paid_at >= start, o.c.paid_at < end, o.c.status.in_(PAID_STATUSES))
            .group_by(text("1"))
        )
        orders.update({_bucket_of(key): int(count) for key, count in conn.execute(paid)})
    return {
        moment: HourStats(
            hour=moment,
            requests=requests[moment],
            errors=errors[moment],
            orders=orders[moment],
            latency=dict(latency[moment]),
        )
        for moment in wanted
    }


def history_start(conn: Connection) -> datetime | None:
    """Return the first whole hour of history: the oldest kept hour, or the raw rows' first.

    Kept hours outlive `retailctl prune`, so pruned raw rows do not shorten the baseline.
    """
    oldest = conn.execute(select(func.min(t.metric.c.recorded_at))).scalar()
    kept = conn.execute(select(func.min(t.metric_hourly.c.hour))).scalar()
    first = None
    if oldest is not None:
        floor = hour_floor(_aware(oldest))
        first = floor if floor == _aware(oldest) else floor + HOUR
    if kept is not None:
        first = min(first, _aware(kept)) if first else _aware(kept)
    return first


def _aware(moment) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
