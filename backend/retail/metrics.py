"""The one entry point for recording metrics (SPEC §3.3), buffered off the request path.

`record_metric()` appends a row to a per-process buffer; a background thread writes the
buffer in one transaction every second (sooner once `BATCH_SIZE` rows wait), through the
process's writer process (retail/writer_process.py) unless RETAIL_METRICS_WRITER
says `thread`, and `flush_metrics()` writes it at once (atexit and gunicorn's
`worker_exit` hook call it).
While the database is unreachable the rows stay buffered and the flush is retried;
past `CAPACITY` rows the oldest are dropped and the count is logged. A row the database
refuses (a data or integrity error, e.g. jsonb's refusal of `\u0000`) is isolated by
splitting the batch: the rows around it are written, it is dropped and counted. Nothing
here raises into the caller. Tests switch to synchronous mode, where each call inserts its
row in the caller's thread and transaction.
"""

import atexit
import logging
import math
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from retail.background import BackgroundLoop

logger = logging.getLogger(__name__)

ORDERS_PER_DAY = "orders_per_day"
ERROR_RATE = "error_rate"
REFUNDS_PER_DAY = "refunds_per_day"
PAYMENT_SUCCESS_RATE = "payment_success_rate"
AVG_RESPONSE_TIME = "avg_response_time"
CIRCUIT_BREAKER_STATE = "circuit_breaker_state"
STOCK_CONFLICTS = "stock_conflicts"
THROTTLED_REQUESTS = "throttled_requests"

METRIC_TYPES = frozenset(
    {
        ORDERS_PER_DAY,
        ERROR_RATE,
        REFUNDS_PER_DAY,
        PAYMENT_SUCCESS_RATE,
        AVG_RESPONSE_TIME,
        CIRCUIT_BREAKER_STATE,
        STOCK_CONFLICTS,
        THROTTLED_REQUESTS,
    }
)

FLUSH_INTERVAL_SECONDS = 1.0
BATCH_SIZE = 500
CAPACITY = 100_000
# Longest pause between retries while the database does not answer.
MAX_RETRY_SECONDS = 30.0

MetricRow = tuple[str, float, dict[str, Any], datetime]

_dumps = orjson.dumps
# Keys that are not strings become strings, as json.dumps makes them.
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def metric_rows_insert(rows: Sequence[MetricRow]) -> None:
    """Insert metric rows in one transaction: COPY on PostgreSQL, multi-row INSERTs on SQLite.

    A statement per batch rather than per row (executemany) also keeps the per-statement
    cost of the rollup trigger on `retail_metric` down. A row whose metadata cannot be
    written as JSON is left out (and counted in a warning) rather than failing, and then
    endlessly retrying, the batch around it.
    """
    from django.db import DEFAULT_DB_ALIAS, connections, transaction

    from retail.models import Metric

    # The connection itself, not the `django.db.connection` proxy, whose every attribute
    # access is a context-local lookup.
    connection = connections[DEFAULT_DB_ALIAS]
    params = _writable(connection, rows)
    if not params:
        return
    quote = connection.ops.quote_name
    table = quote(Metric._meta.db_table)
    columns = ", ".join(map(quote, ("metric_type", "value", "metadata", "recorded_at")))
    if connection.vendor == "postgresql":
        _metric_rows_copy(connection, f"{table} ({columns})", params)
        return
    insert = f"INSERT INTO {table} ({columns}) VALUES "
    # Statements of one size, run on the sqlite3 cursor itself (sqlite3.Cursor.execute,
    # not Django's subclass, whose execute() rewrites `%s` into `?` with a regex over the
    # whole statement): sqlite3's statement cache then parses the statement once per
    # connection instead of once per batch, a third of the cost of a row. The table's
    # insert trigger fires all the same.
    with transaction.atomic(using=DEFAULT_DB_ALIAS), connection.cursor() as cursor:
        with connection.wrap_database_errors:
            for start in range(0, len(params), _ROWS_PER_STATEMENT):
                chunk = params[start : start + _ROWS_PER_STATEMENT]
                placeholders = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
                values = [value for row in chunk for value in row]
                sqlite3.Cursor.execute(cursor.cursor, insert + placeholders, values)


# Rows per INSERT statement: 400 parameters, under the 999 an SQLite build may allow.
_ROWS_PER_STATEMENT = 100


def _writable(connection: Any, rows: Sequence[MetricRow]) -> list[tuple[Any, ...]]:
    """Return the rows as column values: metadata as JSON text, the time for the backend.

    orjson writes the metadata (a tenth of json.dumps's time; the same JSON values, no
    spaces; NaN as null where json.dumps would write invalid JSON). SQLite stores a
    datetime as the text of its naive UTC value, which for an aware UTC time is its ISO
    form without the offset; other times and backends go through Django's adapter.
    """
    sqlite_utc = connection.vendor == "sqlite" and connection.timezone is UTC
    # psycopg writes an aware datetime to timestamptz as it is.
    adapt_datetime = connection.vendor != "postgresql" and connection.ops.adapt_datetimefield_value
    params: list[tuple[Any, ...]] = []
    unwritable = 0
    for metric_type, value, metadata, at in rows:
        try:
            metadata_json = _dumps(metadata, option=_JSON_OPTIONS).decode()
        except TypeError:
            unwritable += 1
            continue
        if sqlite_utc and at.tzinfo is UTC:
            at = at.isoformat(" ")[:-6]
        elif adapt_datetime:
            at = adapt_datetime(at)
        params.append((metric_type, value, metadata_json, at))
    if unwritable:
        report_unwritable(unwritable)
    return params


def report_unwritable(rows: int) -> None:
    """Log the rows left out of a batch because orjson cannot write their metadata."""
    logger.warning(
        "metric.unwritable: %d metric rows left out, their metadata is not JSON",
        rows,
        extra={"event": "metric.unwritable", "rows": rows},
    )


def _metric_rows_copy(connection: Any, target: str, params: Sequence[tuple[Any, ...]]) -> None:
    # COPY costs a third of the client CPU of a multi-row INSERT and half its time; the
    # table's insert triggers fire all the same. COPY's text format hands the metadata's
    # JSON text to the jsonb column's input function.
    from django.db import transaction

    # The raw psycopg cursor raises psycopg's errors: wrapped, they are Django's, so the
    # buffer tells a refused row (DataError) from a lost connection (OperationalError).
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        with connection.wrap_database_errors:
            with cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy:
                copy.set_types(["text", "float8", "text", "timestamptz"])
                for row in params:
                    copy.write_row(row)


class MetricBuffer:
    """A bounded in-memory queue of metric rows, written in batches by a daemon thread."""

    def __init__(
        self,
        *,
        writer: Callable[[Sequence[MetricRow]], None] = metric_rows_insert,
        flush_interval: float = FLUSH_INTERVAL_SECONDS,
        batch_size: int = BATCH_SIZE,
        capacity: int = CAPACITY,
    ) -> None:
        self.writer = writer
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.capacity = capacity
        self.dropped = 0
        self._rows: deque[MetricRow] = deque()
        self._flush_lock = threading.Lock()
        self._failures = 0
        self._flusher = BackgroundLoop(
            name="retail-metrics",
            tick=self._tick,
            interval=self._retry_interval,
            on_exit=_close_thread_connections,
        )

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: MetricRow) -> None:
        """Queue one row; never blocks and never touches the database."""
        self._rows.append(row)
        if len(self._rows) > self.capacity:
            self._drop_oldest()
        self._flusher.ensure_running()
        if len(self._rows) >= self.batch_size:
            self._flusher.wake()

    def flush(self) -> bool:
        """Write every queued row now; return False (rows kept) if the write failed."""
        with self._flush_lock:
            dropped, self.dropped = self.dropped, 0
            if dropped:
                logger.warning(
                    "metric.dropped: %d metric rows dropped, the buffer was full",
                    dropped,
                    extra={"event": "metric.dropped", "dropped": dropped},
                )
            rows: list[MetricRow] = []
            while self._rows:
                try:
                    rows.append(self._rows.popleft())
                except IndexError:
                    break
            if not rows:
                return True
            unwritten, failure, refused = self._write_isolating(rows)
            if refused:
                logger.warning(
                    "metric.refused: %d metric rows refused by the database and dropped (%s)",
                    len(refused),
                    type(refused[0].__cause__ or refused[0]).__name__,
                    extra={"event": "metric.refused", "refused": len(refused)},
                )
            if unwritten:
                # Put the rows back in front of the newer ones and retry later.
                self._rows.extendleft(reversed(unwritten))
                if len(self._rows) > self.capacity:
                    self._drop_oldest()
                self._failures += 1
                logger.warning(
                    "metric.flush_failed: %d metric rows kept for a retry",
                    len(unwritten),
                    exc_info=failure if self._failures == 1 else None,
                    extra={"event": "metric.flush_failed", "pending": len(self._rows)},
                )
                return False
            self._failures = 0
            return True

    def _write_isolating(
        self, rows: list[MetricRow]
    ) -> tuple[list[MetricRow], Exception | None, list[Exception]]:
        """Write `rows`; return the rows left for a retry, why, and the refusals dropped.

        A batch the database refuses is split in halves, each written on its own, until
        each refused row stands alone: it is dropped, every other row is written. Any
        other failure (the connection) keeps the rows not written yet, in order.
        """
        refused: list[Exception] = []
        pending = [rows]  # a stack: the batch to write next is on top
        while pending:
            batch = pending.pop()
            try:
                self.writer(batch)
            except Exception as exc:
                if not is_refused_row(exc):
                    later = [row for rest in reversed(pending) for row in rest]
                    return [*batch, *later], exc, refused
                if len(batch) == 1:
                    refused.append(exc)
                    continue
                middle = len(batch) // 2
                pending += [batch[middle:], batch[:middle]]
        return [], None, refused

    def close(self) -> None:
        """Stop the thread, write what is left, then close the writer (its process)."""
        self._flusher.stop(timeout=10)
        if not self.flush():
            logger.error(
                "metric.unwritten: %d metric rows lost, the database failed at shutdown",
                len(self._rows),
                extra={"event": "metric.unwritten", "lost": len(self._rows)},
            )
        close_writer = getattr(self.writer, "close", None)
        if close_writer is not None:
            close_writer()

    def _drop_oldest(self) -> None:
        while len(self._rows) > self.capacity:
            try:
                self._rows.popleft()
            except IndexError:
                break
            self.dropped += 1

    def _retry_interval(self) -> float:
        # Back off while the database is down: 1 s, 2 s, 4 s… up to MAX_RETRY_SECONDS.
        return min(self.flush_interval * 2 ** min(self._failures, 8), MAX_RETRY_SECONDS)

    def _tick(self) -> None:
        if self._rows or self.dropped:
            self._flush_on_own_connection()

    def _flush_on_own_connection(self) -> None:
        # Django connections are per thread: this one is the flusher's. It is kept between
        # flushes within CONN_MAX_AGE and closed once a flush failed, so the next one
        # reconnects.
        from django.db import close_old_connections, connection

        try:
            close_old_connections()
            if not self.flush():
                connection.close()
        except Exception:
            logger.exception("metric.flusher_error", extra={"event": "metric.flusher_error"})


def is_refused_row(exc: BaseException) -> bool:
    """Return whether the database refused a row's value, not the connection that failed."""
    from django.db import DataError, IntegrityError

    # A value the driver cannot encode (a lone surrogate) is refused before it is sent.
    return isinstance(exc, DataError | IntegrityError | UnicodeError)


def _close_thread_connections() -> None:
    from django.db import connections

    connections.close_all()


_buffer: MetricBuffer | None = None
_buffer_lock = threading.Lock()
_synchronous = False


def _get_buffer() -> MetricBuffer:
    global _buffer
    if _buffer is None:
        with _buffer_lock:
            if _buffer is None:
                _buffer = MetricBuffer(writer=_configured_writer())
                atexit.register(_buffer.close)
    return _buffer


def _configured_writer() -> Callable[[Sequence[MetricRow]], None]:
    """The writer RETAIL_METRICS_WRITER names: a writer process, or the buffer's own thread."""
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, connections

    connection = connections[DEFAULT_DB_ALIAS]
    # A child would open a database of its own in memory, not this process's.
    in_memory = connection.vendor == "sqlite" and connection.is_in_memory_db()
    if settings.RETAIL_METRICS_WRITER == "process" and not in_memory:
        from retail.writer_process import MetricRowsWriter, shared_writer_process

        return MetricRowsWriter(shared_writer_process())
    return metric_rows_insert


def _forget_buffer_after_fork() -> None:
    # The parent's rows and thread stay with the parent; the child starts its own buffer.
    global _buffer, _buffer_lock
    _buffer = None
    _buffer_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_buffer_after_fork)


def record_metric(metric_type: str, value: float, metadata: dict[str, Any] | None = None) -> None:
    """Record one metric row; a failure is logged and never raised into the caller."""
    try:
        value = float(value)
        if not math.isfinite(value):
            # The database refuses NaN (stored as NULL in a NOT NULL column), and the
            # whole batch with it.
            raise ValueError(f"metric value must be a finite number, got {value}")
        row = (metric_type, value, metadata or {}, datetime.now(UTC))
        if _synchronous:
            metric_rows_insert([row])
        else:
            _get_buffer().add(row)
    except Exception:
        logger.exception(
            "metric.record_failed",
            extra={"event": "metric.record_failed", "metric_type": metric_type},
        )


def flush_metrics() -> bool:
    """Write this process's buffered metric rows now; return False if the database failed."""
    buffer = _buffer
    return True if buffer is None else buffer.flush()


def set_synchronous_metrics(enabled: bool) -> None:
    """Insert each metric row in the caller's thread and transaction (for tests)."""
    global _synchronous
    if enabled:
        flush_metrics()
    _synchronous = enabled
