"""Seasonal, robust anomaly detection on hourly series (the method: docs/anomaly-detection.md).

An hour is compared with the same hour of the week in up to six previous weeks, or,
while fewer than three such weeks exist, with the same hour of up to seven previous
days. In log space (so a band scales with the level) the baseline is the references'
median and the spread their median absolute deviation: one anomalous reference moves
neither, so an incident last Tuesday does not hide one this Tuesday. The spread never
falls below what counting noise alone would give (Poisson for counts, binomial for the
error rate) nor below a relative floor, so a quiet history does not make a hair trigger.
"""

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from retailctl.core.series import (
    HOUR,
    SETTLE,
    HourStats,
    history_start,
    hour_floor,
    hourly_stats,
)

WEEK = timedelta(days=7)
DAY = timedelta(days=1)
MIN_WEEKS = 3
MAX_WEEKS = 6
FALLBACK_DAYS = 7
MIN_REFERENCES = 3
# Band half-width in robust standard deviations; chosen with bench/anomaly.py for about
# one false alarm a week over the five series, with every reference noisy.
Z_THRESHOLD = 3.5
_MAD_TO_SIGMA = 1.4826
# Latency and error-rate hours need this many requests to say anything.
MIN_REQUESTS = 30


@dataclass(frozen=True)
class _Model:
    """How one series is judged: on which scale, its noise floor, which way is bad.

    Counts are compared on Anscombe's square-root scale, 2·sqrt(x + 3/8), where Poisson
    noise has a standard deviation of 1 whatever the level; the error rate is turned into
    the errors it means at the judged hour's traffic and compared the same way; latency
    is compared on a log scale (a band proportional to the level).
    """

    scale: str  # "count" | "rate" | "log"
    relative_floor: float
    both_ways: bool
    needs_requests: bool = False

    def forward(self, value: float, requests: int) -> float:
        value = max(value, 0.0)
        if self.scale == "count":
            return 2.0 * math.sqrt(value + 0.375)
        if self.scale == "rate":
            return 2.0 * math.sqrt(value / 100.0 * requests + 0.375)
        return math.log(value + 1.0)

    def inverse(self, scaled: float, requests: int) -> float:
        if self.scale == "log":
            return max(math.exp(scaled) - 1.0, 0.0)
        count = max((max(scaled, 0.0) / 2.0) ** 2 - 0.375, 0.0)
        return count if self.scale == "count" else 100.0 * count / max(requests, 1)

    def floor(self, centre: float) -> float:
        """The smallest spread: counting noise plus a relative wobble of the level."""
        if self.scale == "log":
            return self.relative_floor
        count = max((centre / 2.0) ** 2 - 0.375, 0.0)
        return math.hypot(1.0, self.relative_floor * math.sqrt(count))


SERIES: dict[str, _Model] = {
    "requests": _Model(scale="count", relative_floor=0.08, both_ways=True),
    "errors": _Model(scale="count", relative_floor=0.15, both_ways=False),
    "error_rate": _Model(scale="rate", relative_floor=0.15, both_ways=False, needs_requests=True),
    "p95": _Model(scale="log", relative_floor=0.1, both_ways=False, needs_requests=True),
    "p99": _Model(scale="log", relative_floor=0.15, both_ways=False, needs_requests=True),
    "orders": _Model(scale="count", relative_floor=0.08, both_ways=True),
}


@dataclass(frozen=True)
class Verdict:
    """One hour of one series against its seasonal band."""

    series: str
    hour: datetime
    observed: float
    expected: float
    low: float
    high: float
    score: float
    basis: str  # "weekly" | "daily"
    references: int

    @property
    def anomalous(self) -> bool:
        if SERIES[self.series].both_ways:
            return abs(self.score) > Z_THRESHOLD
        return self.score > Z_THRESHOLD

    @property
    def direction(self) -> str:
        return "above" if self.score > 0 else "below"

    def to_document(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "hour": self.hour.isoformat(),
            "observed": round(self.observed, 3),
            "expected": round(self.expected, 3),
            "low": round(self.low, 3),
            "high": round(self.high, 3),
            "score": round(self.score, 2),
            "direction": self.direction,
            "anomalous": self.anomalous,
            "basis": self.basis,
            "references": self.references,
        }


def reference_hours(hour: datetime, first: datetime | None) -> tuple[list[datetime], str]:
    """Return the hours `hour` is compared with, and the basis (weekly or daily)."""
    if first is None:
        return [], "daily"
    weekly = [hour - k * WEEK for k in range(1, MAX_WEEKS + 1) if hour - k * WEEK >= first]
    if len(weekly) >= MIN_WEEKS:
        return weekly, "weekly"
    daily = [hour - d * DAY for d in range(1, FALLBACK_DAYS + 1) if hour - d * DAY >= first]
    return daily, "daily"


def anomaly_check(
    series: str,
    observed: float,
    references: Sequence[float],
    *,
    hour: datetime,
    basis: str,
    requests: int = 0,
) -> Verdict | None:
    """Judge one observed value against its reference values; None when too few."""
    model = SERIES[series]
    if len(references) < MIN_REFERENCES:
        return None
    scaled = [model.forward(value, requests) for value in references]
    centre = statistics.median(scaled)
    mad = statistics.median(abs(value - centre) for value in scaled)
    sigma = max(_MAD_TO_SIGMA * mad, model.floor(centre))
    score = (model.forward(observed, requests) - centre) / sigma
    return Verdict(
        series=series,
        hour=hour,
        observed=observed,
        expected=model.inverse(centre, requests),
        low=model.inverse(centre - Z_THRESHOLD * sigma, requests),
        high=model.inverse(centre + Z_THRESHOLD * sigma, requests),
        score=score,
        basis=basis,
        references=len(references),
    )


def hour_judge(
    series: str,
    target: HourStats,
    stats: dict[datetime, HourStats],
    hours: list[datetime],
    basis: str,
) -> Verdict | None:
    """Judge one series of a target hour against its reference hours' stats."""
    model = SERIES[series]
    if model.needs_requests and target.requests < MIN_REQUESTS:
        return None
    observed = target.value(series)
    values = []
    for hour in hours:
        reference = stats[hour]
        if model.needs_requests and reference.requests < MIN_REQUESTS:
            continue
        value = reference.value(series)
        if value is not None:
            values.append(value)
    if observed is None:
        return None
    return anomaly_check(
        series, observed, values, hour=target.hour, basis=basis, requests=target.requests
    )


def verdicts_for(
    conn: Connection, targets: Iterable[datetime], series: Iterable[str], *, now: datetime
) -> list[Verdict]:
    """Judge every target hour of every series; hours before the history are skipped."""
    first = history_start(conn)
    if first is None:
        return []
    plans = []
    needed: set[datetime] = set()
    for target in sorted({hour_floor(hour) for hour in targets}):
        if target < first:
            continue
        hours, basis = reference_hours(target, first)
        plans.append((target, hours, basis))
        needed.add(target)
        needed.update(hours)
    stats = hourly_stats(conn, needed, now=now)
    verdicts = []
    names = list(series)
    for target, hours, basis in plans:
        for name in names:
            verdict = hour_judge(name, stats[target], stats, hours, basis)
            if verdict is not None:
                verdicts.append(verdict)
    return verdicts


def last_complete_hour(now: datetime) -> datetime:
    """Return the start of the last hour that has ended (and settled) by `now`."""
    return hour_floor(now - SETTLE) - HOUR


def anomalies_find(conn: Connection, *, days: int, now: datetime) -> list[Verdict]:
    """Return the anomalous hours of the last `days` days (complete hours), oldest first."""
    end = last_complete_hour(now)
    targets = [end - k * HOUR for k in range(days * 24)]
    found = [v for v in verdicts_for(conn, targets, SERIES, now=now) if v.anomalous]
    return sorted(found, key=lambda v: (v.hour, list(SERIES).index(v.series)))
