"""Log-bucketed value histograms (as DDSketch): percentiles within 1% relative error.

A positive value v falls in bucket ceil(ln(v) / ln(gamma)) with gamma = 1.01 / 0.99, and
the bucket's representative value is within 1% of every value in it, so a percentile
read off merged bucket counts is within 1% of the exact one. The database triggers of
migration retail/0002_metric_rollup compute the same bucket in SQL; `bucket_of` is
their mirror for rows the read model has to handle itself.
"""

import math
from collections.abc import Iterable, Mapping
from typing import Any

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
LN_GAMMA = 0.020000666706669435
ZERO_BUCKET = -100000
HUGE_BUCKET = 100000
_MIN_POSITIVE = 1e-6
_MAX_FINITE = 1e15


def bucket_of(value: float) -> int:
    """Return the bucket index of one value, exactly as the rollup trigger does."""
    if _MIN_POSITIVE < value < _MAX_FINITE:
        return math.ceil(math.log(value) / LN_GAMMA)
    return HUGE_BUCKET if value >= _MAX_FINITE else ZERO_BUCKET


def bucket_value(bucket: int) -> float:
    """Return the value that stands for every value in `bucket`."""
    if bucket == ZERO_BUCKET:
        return 0.0
    if bucket == HUGE_BUCKET:
        return _MAX_FINITE
    return 2 * GAMMA**bucket / (GAMMA + 1)


def quantile(histogram: Mapping[int, int], q: float) -> float | None:
    """Return the nearest-rank q-quantile of a bucket histogram, or None when it is empty."""
    total = sum(count for count in histogram.values() if count > 0)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bucket in sorted(histogram):
        count = histogram[bucket]
        if count <= 0:
            continue
        seen += count
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(max(histogram))


def exact_quantile(values: Iterable[float], q: float) -> float | None:
    """Return the nearest-rank q-quantile of raw values, or None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def route_of(metadata: Any) -> str:
    """Return the rollup route of a metric's metadata: `route`, else `path`, else ''."""
    if not isinstance(metadata, dict):
        return ""
    route = metadata.get("route")
    if route is None:
        route = metadata.get("path")
    return "" if route is None else str(route)[:200]


def status_class_of(metadata: Any) -> str:
    """Return '2xx', '4xx'… from a metric's metadata `status_code`, or ''."""
    if not isinstance(metadata, dict) or metadata.get("status_code") is None:
        return ""
    return str(metadata["status_code"])[:1] + "xx"


def count_at_most(histogram: Mapping[int, int], limit: float) -> int:
    """Return how many values of a bucket histogram are certainly <= `limit`.

    Bucket i holds values in (gamma^(i-1), gamma^i]: it counts when its upper edge is
    within the limit, so a value is never counted under a limit it exceeds (a value up to
    2% below the limit may count only under the next one).
    """
    if limit < _MIN_POSITIVE:
        return 0  # the zero bucket holds values up to 1e-6: none is certainly below
    if limit == math.inf:
        top = HUGE_BUCKET
    elif limit >= _MAX_FINITE:
        top = HUGE_BUCKET - 1  # the top bucket has no upper edge
    else:
        top = math.floor(math.log(limit) / LN_GAMMA)
    return sum(count for bucket, count in histogram.items() if bucket <= top and count > 0)
