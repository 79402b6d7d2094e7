"""UtcDateTime compares times, whichever text form an SQLite row holds."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.dialects import postgresql

from retailctl.core import tables as t

_BASE = datetime(2026, 3, 10, tzinfo=UTC)
# The forms other tools write besides Django's 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
_FORMS = {
    "django": lambda at: at.replace(tzinfo=None).isoformat(" "),
    "iso": lambda at: at.replace(tzinfo=None).isoformat("T"),
    "iso-ms": lambda at: at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}",
    "sqlite-now": lambda at: at.strftime("%Y-%m-%d %H:%M:%S"),
}
_INSERT = "INSERT INTO retail_metric (id, metric_type, value, recorded_at) VALUES (:i, 'x', 1, :at)"
_OPERATORS = {
    ">=": (lambda c, m: c >= m, lambda a, m: a >= m),
    ">": (lambda c, m: c > m, lambda a, m: a > m),
    "<": (lambda c, m: c < m, lambda a, m: a < m),
    "<=": (lambda c, m: c <= m, lambda a, m: a <= m),
}


def _stored(at: datetime, form: str) -> datetime:
    """Return the time a row stored in `form` stands for (the form's precision)."""
    if form == "iso-ms":
        return at.replace(microsecond=at.microsecond // 1000 * 1000)
    if form == "sqlite-now":
        return at.replace(microsecond=0)
    return at


# Times within three days, often on the very same second or midnight as the moment.
_times = st.one_of(
    st.integers(0, 3 * 86400 * 1000).map(lambda ms: _BASE + timedelta(milliseconds=ms)),
    st.integers(0, 3).map(lambda day: _BASE + timedelta(days=day)),
    st.integers(0, 3 * 86400 * 10**6).map(lambda us: _BASE + timedelta(microseconds=us)),
)


@pytest.fixture(scope="module")
def sqlite_engine():
    engine = create_engine("sqlite://")
    t.metadata.create_all(engine, tables=[t.metric])
    yield engine
    engine.dispose()


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(_times, st.sampled_from(sorted(_FORMS))), min_size=1, max_size=30),
    moment=_times,
    op=st.sampled_from(sorted(_OPERATORS)),
)
def test_sqlite_comparisons_match_the_times_of_every_form(sqlite_engine, rows, moment, op):
    """`recorded_at <op> moment` selects exactly the rows whose time satisfies it."""
    sql_op, python_op = _OPERATORS[op]
    with sqlite_engine.begin() as conn:
        conn.execute(text("DELETE FROM retail_metric"))
        conn.execute(
            text(_INSERT),
            [{"i": i, "at": _FORMS[form](at)} for i, (at, form) in enumerate(rows)],
        )
        selected = set(
            conn.execute(
                select(t.metric.c.id).where(sql_op(t.metric.c.recorded_at, moment))
            ).scalars()
        )
    expected = {i for i, (at, form) in enumerate(rows) if python_op(_stored(at, form), moment)}
    assert selected == expected


def test_a_moment_at_midnight_is_one_index_range_and_postgresql_compares_plainly():
    """A window's start (midnight) compiles to one range on SQLite; PostgreSQL is untouched."""
    start = datetime(2026, 3, 10, tzinfo=UTC)
    condition = t.metric.c.recorded_at >= start
    sqlite_sql = str(
        select(t.metric.c.id)
        .where(condition)
        .compile(dialect=create_engine("sqlite://").dialect, compile_kwargs={"literal_binds": True})
    )
    assert sqlite_sql.endswith("WHERE (retail_metric.recorded_at >= '2026-03-10')")
    postgres_sql = str(select(t.metric.c.id).where(condition).compile(dialect=postgresql.dialect()))
    assert postgres_sql.endswith(
        "WHERE retail_metric.recorded_at >= %(recorded_at_1)s::TIMESTAMP WITH TIME ZONE"
    )


def test_a_newest_first_read_of_a_window_walks_only_that_window_of_the_index():
    """`ORDER BY recorded_at DESC LIMIT n` over [start, end) is bounded by the window.

    SQLite cannot bound an index walk by an OR of the two text forms: the live
    dashboard's errors of the last seconds read every error row ever kept (0.24 s a
    poll at 10M rows) until each comparison led with a plain range.
    """
    engine = create_engine("sqlite://")
    t.metadata.create_all(engine, tables=[t.metric])
    end = datetime(2026, 3, 10, 11, 43, 50, tzinfo=UTC)
    query = (
        select(t.metric.c.id)
        .where(
            t.metric.c.metric_type == "error_rate",
            t.metric.c.recorded_at >= end - timedelta(seconds=17),
            t.metric.c.recorded_at < end,
        )
        .order_by(t.metric.c.recorded_at.desc())
        .limit(50)
    )
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        conn.execute(text("CREATE INDEX type_time ON retail_metric (metric_type, recorded_at)"))
        plan = " ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "(metric_type=? AND recorded_at>? AND recorded_at<?)" in plan, plan
    engine.dispose()


def test_rows_read_back_as_aware_utc_times_from_every_form(sqlite_engine):
    """Every form reads back as the same aware UTC datetime."""
    at = datetime(2026, 3, 10, 12, 30, 15, 250000, tzinfo=UTC)
    with sqlite_engine.begin() as conn:
        conn.execute(text("DELETE FROM retail_metric"))
        conn.execute(
            insert(t.metric),
            [{"id": 1, "metric_type": "x", "value": 1, "recorded_at": at}],
        )
        conn.execute(
            text(_INSERT),
            {"i": 2, "at": _FORMS["iso-ms"](at)},
        )
        values = conn.execute(select(t.metric.c.recorded_at).order_by(t.metric.c.id)).scalars()
        assert list(values) == [at, at]
