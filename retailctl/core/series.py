"""Hourly series of the anomaly detector: requests, errors, error rate, p95/p99, orders.

Only the hours asked for are read, each span through the (metric_type, recorded_at)
index, grouped by hour and latency bucket in SQL: a detector that compares one hour
with a dozen reference hours reads a dozen hours of rows, never the whole history.
"""

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Integer, and_, case, cast, func, select, text

from retailctl.core import tables as t
from retailctl.core.metrics import AVG_RESPONSE_TIME, ERROR_RATE, PAID_STATUSES
from retailctl.core.sketch import HUGE_BUCKET, LN_GAMMA, ZERO_BUCKET, quantile

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class HourStats:
    """What one UTC hour held."""

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


def _hour_sql(column, dialect_name: str):
    if dialect_name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    # Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' (UTC) on SQLite: the hour is a prefix.
    return func.substr(column, 1, 13)


def _hour_of(key: str) -> datetime:
    return datetime.fromisoformat(key[:10]).replace(hour=int(key[11:13]), tzinfo=UTC)


def _spans(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Merge sorted hour starts into contiguous [start, end) spans."""
    spans: list[list[datetime]] = []
    for hour in hours:
        if spans and spans[-1][1] == hour:
            spans[-1][1] = hour + HOUR
        else:
            spans.append([hour, hour + HOUR])
    return [(start, end) for start, end in spans]


def hourly_stats(conn: Connection, hours: Iterable[datetime]) -> dict[datetime, HourStats]:
    """Return the stats of each hour given by its start (hours without rows are zeros)."""
    wanted = sorted({hour_floor(hour) for hour in hours})
    m, o = t.metric, t.order
    dialect = conn.dialect.name
    requests: Counter = Counter()
    errors: Counter = Counter()
    orders: Counter = Counter()
    latency: dict[datetime, Counter] = defaultdict(Counter)
    metric_hour = _hour_sql(m.c.recorded_at, dialect)
    paid_hour = _hour_sql(o.c.paid_at, dialect)
    for start, end in _spans(wanted):
        in_span = and_(m.c.recorded_at >= start, m.c.recorded_at < end)
        buckets = (
            select(metric_hour, _bucket_sql(m.c.value), func.count())
            .where(m.c.metric_type == AVG_RESPONSE_TIME, in_span)
            .group_by(text("1"), text("2"))
        )
        for key, bucket, count in conn.execute(buckets):
            hour = _hour_of(key)
            latency[hour][int(bucket)] += int(count)
            requests[hour] += int(count)
        counted = (
            select(metric_hour, func.count())
            .where(m.c.metric_type == ERROR_RATE, in_span)
            .group_by(text("1"))
        )
        errors.update({_hour_of(key): int(count) for key, count in conn.execute(counted)})
        paid = (
            select(paid_hour, func.count())
            .where(o.c.paid_at >= start, o.c.paid_at < end, o.c.status.in_(PAID_STATUSES))
            .group_by(text("1"))
        )
        orders.update({_hour_of(key): int(count) for key, count in conn.execute(paid)})
    return {
        hour: HourStats(
            hour=hour,
            requests=requests[hour],
            errors=errors[hour],
            orders=orders[hour],
            latency=dict(latency[hour]),
        )
        for hour in wanted
    }


def history_start(conn: Connection) -> datetime | None:
    """Return the first whole hour of recorded history (the oldest metric row's next hour)."""
    m = t.metric
    oldest = conn.execute(select(func.min(m.c.recorded_at))).scalar()
    if oldest is None:
        return None
    if isinstance(oldest, str):
        oldest = datetime.fromisoformat(oldest)
    oldest = oldest.replace(tzinfo=UTC) if oldest.tzinfo is None else oldest.astimezone(UTC)
    floor = hour_floor(oldest)
    return floor if floor == oldest else floor + HOUR
