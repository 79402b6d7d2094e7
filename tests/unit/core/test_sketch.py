"""Log-bucket histograms: percentiles within 1%, and the same buckets as the SQL triggers."""

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from retailctl.core import tables as t
from retailctl.core.sketch import (
    GAMMA,
    LN_GAMMA,
    RELATIVE_ACCURACY,
    bucket_of,
    bucket_value,
    exact_quantile,
    quantile,
)

_values = st.lists(st.floats(min_value=0.01, max_value=60_000), min_size=1, max_size=300)


def test_constants_agree():
    """ln(gamma) is the logarithm of gamma = (1 + a) / (1 - a)."""
    assert math.isclose(LN_GAMMA, math.log(GAMMA), rel_tol=1e-15)


@settings(max_examples=200, deadline=None)
@given(_values, st.sampled_from([0.5, 0.95, 0.99]))
def test_quantile_within_relative_accuracy(values, q):
    """The histogram's quantile is within 1% of the exact nearest-rank quantile."""
    histogram = {}
    for value in values:
        histogram[bucket_of(value)] = histogram.get(bucket_of(value), 0) + 1
    exact = exact_quantile(values, q)
    assert abs(quantile(histogram, q) - exact) <= RELATIVE_ACCURACY * exact + 1e-12


def test_zero_and_empty():
    """Zero falls in the zero bucket; an empty histogram has no quantile."""
    assert bucket_value(bucket_of(0.0)) == 0.0
    assert quantile({}, 0.99) is None


def test_python_buckets_match_the_trigger(rows, engine):
    """The trigger's SQL bucket equals bucket_of for the same values."""
    values = [0.0, 0.5, 1.0, 1.02, 12.5, 99.99, 100.0, 1234.5, 59999.0]
    rows.metrics([(f"probe_{i}", value, None, None) for i, value in enumerate(values)])
    with engine.connect() as conn:
        query = select(t.metric_rollup.c.metric_type, t.metric_rollup.c.bucket)
        got = {kind: bucket for kind, bucket in conn.execute(query)}
    assert got == {f"probe_{i}": bucket_of(value) for i, value in enumerate(values)}
