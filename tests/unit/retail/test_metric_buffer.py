"""Buffered metric recording: batches, flush at exit, bounded memory, no error in a request."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DataError, OperationalError
from django.test import Client

from retail import metrics
from retail.metrics import MetricBuffer, flush_metrics, record_metric, set_synchronous_metrics
from retail.models import Metric

ROOT = Path(__file__).resolve().parents[3]


def _row(n: int) -> metrics.MetricRow:
    return ("avg_response_time", float(n), {"n": n}, datetime.now(UTC))


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _log_records(event: str) -> list[dict]:
    lines = (settings.RETAIL_LOG_DIR / "application.log").read_text("utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == event]


def test_rows_wait_in_memory_until_a_flush_writes_them_in_one_batch():
    """Adding rows writes nothing; flush() writes all of them, in order, in one call."""
    batches: list[list] = []
    buffer = MetricBuffer(writer=batches.append, flush_interval=60)
    try:
        for n in range(3):
            buffer.add(_row(n))
        assert batches == [] and len(buffer) == 3
        assert buffer.flush() is True
        assert [[row[1] for row in batch] for batch in batches] == [[0.0, 1.0, 2.0]]
        assert len(buffer) == 0
    finally:
        buffer.close()


def test_a_full_batch_is_written_by_the_background_thread():
    """Reaching batch_size wakes the flusher thread at once, long before the interval."""
    batches: list[list] = []
    buffer = MetricBuffer(writer=batches.append, flush_interval=60, batch_size=5)
    try:
        for n in range(5):
            buffer.add(_row(n))
        assert _wait_for(lambda: sum(map(len, batches)) == 5, timeout=5)
    finally:
        buffer.close()


def test_a_failing_database_keeps_rows_then_drops_the_oldest_past_the_bound():
    """While writes fail rows stay queued; past capacity the oldest go and the count is logged."""
    healthy = False
    written: list = []

    def writer(rows):
        if not healthy:
            raise OperationalError("could not connect to server")
        written.extend(rows)

    buffer = MetricBuffer(writer=writer, flush_interval=60, capacity=10, batch_size=1000)
    try:
        for n in range(6):
            buffer.add(_row(n))
        assert buffer.flush() is False and len(buffer) == 6
        for n in range(6, 15):
            buffer.add(_row(n))
        assert len(buffer) == 10 and buffer.dropped == 5
        healthy = True
        assert buffer.flush() is True
        assert [row[1] for row in written] == [float(n) for n in range(5, 15)]
    finally:
        buffer.close()
    dropped = _log_records("metric.dropped")
    assert dropped and dropped[-1]["dropped"] == 5 and dropped[-1]["level"] == "WARNING"


def test_rows_the_database_refuses_at_shutdown_are_reported():
    """close() with the database still down logs one ERROR saying how many rows were lost."""

    def unreachable(rows):
        raise OperationalError("could not connect to server")

    buffer = MetricBuffer(writer=unreachable, flush_interval=60)
    for n in range(3):
        buffer.add(_row(n))
    buffer.close()
    unwritten = _log_records("metric.unwritten")
    assert unwritten[-1]["lost"] == 3 and unwritten[-1]["level"] == "ERROR"


@pytest.mark.django_db
def test_an_unreachable_database_never_fails_a_request(monkeypatch):
    """With the database failing, requests still answer and their rows wait for a retry."""

    def unreachable(rows):
        raise OperationalError("could not connect to server")

    buffer = MetricBuffer(writer=unreachable, flush_interval=60)
    monkeypatch.setattr(metrics, "_buffer", buffer)
    set_synchronous_metrics(False)
    try:
        for _ in range(3):
            assert Client().get("/api/products/999999/").status_code == 404
        assert len(buffer) == 6  # avg_response_time and error_rate per request
        assert flush_metrics() is False and len(buffer) == 6
    finally:
        set_synchronous_metrics(True)
        buffer.close()
    # Synchronous mode: the failed insert is logged, the request still succeeds.
    monkeypatch.setattr(metrics, "metric_rows_insert", unreachable)
    assert Client().get("/api/products/999999/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_background_thread_inserts_on_its_own_connection():
    """record_metric() in buffered mode: rows reach the table without any flush call."""
    buffer = MetricBuffer(flush_interval=0.05)
    metrics_before = Metric.objects.count()
    try:
        for n in range(4):
            buffer.add(("stock_conflicts", 1.0, {"product_id": n}, datetime.now(UTC)))
        assert _wait_for(lambda: Metric.objects.count() == metrics_before + 4)
    finally:
        buffer.close()
    rows = Metric.objects.filter(metric_type="stock_conflicts").order_by("id")
    assert [row.metadata["product_id"] for row in rows] == [0, 1, 2, 3]


@pytest.mark.django_db
def test_the_metric_table_has_the_three_indexes():
    """retail_metric is indexed on metric_type, recorded_at and (metric_type, recorded_at)."""
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "retail_metric")
    indexed = {tuple(c["columns"]) for c in constraints.values() if c["index"]}
    assert {("metric_type",), ("recorded_at",), ("metric_type", "recorded_at")} <= indexed


@pytest.mark.django_db
def test_synchronous_mode_inserts_in_the_callers_transaction():
    """In tests record_metric() writes at once, so the row is visible right after the call."""
    record_metric(metrics.ORDERS_PER_DAY, 1, {"order_id": 7})
    row = Metric.objects.get(metric_type="orders_per_day")
    assert row.value == 1.0 and row.metadata == {"order_id": 7}


@pytest.mark.django_db
def test_a_value_that_is_not_a_finite_number_is_refused_and_logged():
    """NaN and infinity never reach the buffer, whose batch the database would refuse."""
    for value in (float("nan"), float("inf"), "-inf"):
        record_metric(metrics.AVG_RESPONSE_TIME, value, {"route": "x"})
    record_metric(metrics.AVG_RESPONSE_TIME, 2.5, {"route": "x"})
    assert list(Metric.objects.values_list("value", flat=True)) == [2.5]
    refused = [r for r in _log_records("metric.record_failed") if "finite" in r["exc_info"]]
    assert [r["metric_type"] for r in refused] == [metrics.AVG_RESPONSE_TIME] * 3


@pytest.mark.django_db
def test_rows_whose_metadata_is_not_json_are_left_out_and_the_rest_written():
    """One unwritable row does not fail (and endlessly retry) the batch around it."""
    rows = [
        (
            "stock_conflicts",
            1.0,
            {"product_id": 1, "sku": "ÉTÉ-1", 7: [1.5, None]},
            datetime.now(UTC),
        ),
        ("stock_conflicts", 2.0, {"product_id": object()}, datetime.now(UTC)),
        ("stock_conflicts", 3.0, {"product_id": 3, "ratio": float("nan")}, datetime.now(UTC)),
    ]
    metrics.metric_rows_insert(rows)
    written = Metric.objects.filter(metric_type="stock_conflicts").order_by("id")
    assert [(m.value, m.metadata) for m in written] == [
        (1.0, {"product_id": 1, "sku": "ÉTÉ-1", "7": [1.5, None]}),
        (3.0, {"product_id": 3, "ratio": None}),
    ]
    assert written[0].recorded_at == rows[0][3]
    [warning] = _log_records("metric.unwritable")
    assert warning["rows"] == 1 and warning["level"] == "WARNING"


RECORDER = """
import os, sys
sys.path[:0] = [{backend!r}]
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
import django
django.setup()
from retail.metrics import record_metric
for n in range({count}):
    record_metric("avg_response_time", n, {{"n": n}})
# No flush here: a normal exit must write the buffer (atexit).
"""


def _run_recorder(database_url: str, log_dir: Path, count: int) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "RETAIL_LOG_DIR": str(log_dir)}
    subprocess.run(
        [sys.executable, str(ROOT / "backend" / "manage.py"), "migrate", "-v0"],
        env=env,
        check=True,
        timeout=120,
    )
    script = RECORDER.format(backend=str(ROOT / "backend"), count=count)
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)


def test_a_process_that_exits_normally_leaves_every_row_sqlite(tmp_path):
    """A process records 1,234 metrics and exits: exactly 1,234 rows are in SQLite."""
    database = tmp_path / "exit.sqlite3"
    _run_recorder(f"sqlite:///{database}", tmp_path, 1234)
    with sqlite3.connect(database) as conn:
        values = [v for (v,) in conn.execute("SELECT value FROM retail_metric ORDER BY id")]
    assert values == [float(n) for n in range(1234)]


def test_a_process_that_exits_normally_leaves_every_row_postgresql(fresh_postgres_url, tmp_path):
    """The same on PostgreSQL: exactly N rows after a normal exit."""
    import psycopg

    _run_recorder(fresh_postgres_url, tmp_path, 1234)
    with psycopg.connect(fresh_postgres_url) as conn:
        (count,) = conn.execute("SELECT count(*) FROM retail_metric").fetchone()
    assert count == 1234


def test_a_refused_row_is_isolated_and_a_lost_connection_keeps_the_rest():
    """Halving isolates each refused row; a connection error mid-way keeps the unwritten rows."""
    calls: list[list[float]] = []
    written: list[float] = []
    connection_lost = False
    logged = len(_log_records("metric.refused"))

    def writer(rows):
        values = [row[1] for row in rows]
        calls.append(values)
        if connection_lost and len(calls) > 3:
            raise OperationalError("server closed the connection unexpectedly")
        if any(value in (3.0, 12.0) for value in values):
            raise DataError("unsupported Unicode escape sequence")
        written.extend(values)

    buffer = MetricBuffer(writer=writer, flush_interval=60)
    try:
        for n in range(16):
            buffer.add(_row(n))
        assert buffer.flush() is True
        assert written == [n for n in range(16) if n not in (3, 12)]
        assert len(calls) < 16  # halves, not one call per row
        calls.clear()
        written.clear()
        connection_lost = True
        for n in range(16):
            buffer.add(_row(n))
        assert buffer.flush() is False
        # [0..15] refused, [0..7] refused, [0..3] refused, then the connection dropped:
        # every row not written is kept, in order, for the retry.
        assert [row[1] for row in buffer._rows] == [float(n) for n in range(16)]
    finally:
        buffer._rows.clear()
        buffer.close()
    [refused] = _log_records("metric.refused")[logged:]
    assert refused["refused"] == 2 and refused["level"] == "WARNING"


@pytest.mark.django_db
def test_rows_the_database_refuses_are_dropped_and_counted_the_rest_written():
    """A NUL (refused by PostgreSQL's jsonb) or a lone surrogate only loses its own row."""
    from django.db import connection

    logged = len(_log_records("metric.refused"))
    buffer = MetricBuffer(flush_interval=60)
    good = [("stock_conflicts", float(n), {"n": n}, datetime.now(UTC)) for n in range(20)]
    nul = ("stock_conflicts", 100.0, {"path": "/api/x\x00/"}, datetime.now(UTC))
    surrogate = ("stock_conflicts\ud800", 101.0, {}, datetime.now(UTC))
    try:
        for row in [*good[:10], nul, surrogate, *good[10:]]:
            buffer.add(row)
        assert buffer.flush() is True
    finally:
        buffer.close()
    values = list(Metric.objects.order_by("id").values_list("value", flat=True))
    refused_by_postgres = connection.vendor == "postgresql"
    expected = [*range(10), *([] if refused_by_postgres else [100]), *range(10, 20)]
    assert values == [float(v) for v in expected]
    [warning] = _log_records("metric.refused")[logged:]
    assert warning["refused"] == (2 if refused_by_postgres else 1)
    assert "\x00" not in warning["message"] and "/api/x" not in warning["message"]
