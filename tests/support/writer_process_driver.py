"""A server-like process whose metric rows and log lines go through its writer process.

`python tests/support/writer_process_driver.py SCENARIO` with a backend environment
(tests.support.servers.backend_env); prints one JSON object of what it saw, then exits
normally, so that its atexit handlers write what it still holds. Driven by
tests/unit/retail/test_writer_process.py.
"""

import io
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backend"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from retail.logging import flush_logs, handler_named, log_event  # noqa: E402
from retail.metrics import _get_buffer, flush_metrics, record_metric  # noqa: E402
from retail.writer_process import LOGS, shared_writer_process  # noqa: E402


def _record(count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        record_metric("stock_conflicts", n, {"n": n})


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _until_flushed(deadline_seconds: float = 30) -> list[bool]:
    """Flush until a flush writes everything; return every flush's result."""
    results = [flush_metrics()]
    deadline = time.monotonic() + deadline_seconds
    while not results[-1] and time.monotonic() < deadline:
        time.sleep(0.05)
        results.append(flush_metrics())
    return results


def _until_dead(pid: int, deadline_seconds: float = 10) -> None:
    deadline = time.monotonic() + deadline_seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# The log lines' scenarios: events with values JSON has no type for, formatted by the
# formatter's json_default wherever the line is made.
EVENTS = [
    {"n": 0, "price": Decimal("9.99"), "at": datetime(2026, 12, 6, tzinfo=UTC)},
    {"n": 1, "pair": (1, "a"), "by_id": {7: "seven"}, "error": ValueError("bad")},
    {"n": 2, "text": "caf\u00e9 \u2603", "nothing": None, "ratio": 0.25},
]


def _log_events(count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        log_event("driver.event", **EVENTS[n % len(EVENTS)], seq=n)


class _CountingFormatting:
    """Count the lines this process formats from log_fields()' parts itself."""

    def __init__(self, formatter) -> None:
        self.count = 0
        self._format_fields = formatter.format_fields
        formatter.format_fields = self

    def __call__(self, *parts):
        self.count += 1
        return self._format_fields(*parts)


def _until_logs_ready(process, deadline_seconds: float = 30) -> bool:
    deadline = time.monotonic() + deadline_seconds
    while not process.ready(LOGS) and time.monotonic() < deadline:
        time.sleep(0.02)
    return process.ready(LOGS)


def _logs_scenario(scenario: str, seen: dict) -> None:
    process = shared_writer_process()
    handler = handler_named("json")
    formatted_here = _CountingFormatting(handler.formatter)
    if scenario == "logs-short":
        _log_events(10)
        flush_logs()
        seen["pid_after_short"] = process.pid
        _log_events(2000, start=10)
        flush_logs()
        seen["started_pid"] = process.pid
        seen["ready"] = _until_logs_ready(process)
        before = formatted_here.count
        _log_events(10, start=2010)
        flush_logs()
        seen["formatted_here_after_ready"] = formatted_here.count - before
        return
    _record(1)
    flush_metrics()
    seen["ready"] = _until_logs_ready(process)
    seen["first_pid"] = process.pid
    if scenario == "logs":
        # The same events with the same clock, through the child and then here.
        real_time = time.time
        time.time = lambda: 1796500000.123456
        _log_events(6)
        flush_logs()
        seen["formatted_here_by_child"] = formatted_here.count
        handler.writer_process = False
        _log_events(6)
        flush_logs()
        seen["formatted_here"] = formatted_here.count
        handler.writer_process = True
        time.time = real_time
    elif scenario == "logs-kill":
        _log_events(5)  # through the child, which then dies before the next batch
        flush_logs()
        os.kill(process.pid, signal.SIGKILL)
        _until_dead(seen["first_pid"])
        _log_events(10, start=5)
        flush_logs()
        seen["formatted_here"] = formatted_here.count
        _log_events(10, start=15)
        flush_logs()
    elif scenario == "logs-stopped":
        process.reply_timeout = 1.0
        os.kill(process.pid, signal.SIGSTOP)
        _log_events(10)
        flush_logs()
        seen["formatted_here"] = formatted_here.count
        seen["stopped_alive"] = _alive(seen["first_pid"])
    elif scenario == "logs-exit":
        _log_events(10)  # left for logging's shutdown to send
        seen["formatted_here"] = formatted_here.count
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")


def main(scenario: str) -> dict:
    writer = _get_buffer().writer
    seen: dict = {"own_pid": os.getpid(), "writer": type(writer).__name__}
    if scenario == "exit":
        _record(50)
        seen["flushed"] = flush_metrics()
        seen["writer_pid"] = writer.pid
        seen["writer_parent"] = _parent_of(writer.pid)
        _record(10, start=50)  # left for the exit to write
    elif scenario in ("kill", "terminate"):
        _record(10)
        seen["flushed"] = flush_metrics()
        seen["first_pid"] = writer.pid
        first = writer.process._child
        os.kill(writer.pid, signal.SIGKILL if scenario == "kill" else signal.SIGTERM)
        if scenario == "kill":
            _until_dead(seen["first_pid"])
        _record(10, start=10)
        seen["flushes"] = _until_flushed()
        seen["second_pid"] = writer.pid
        if scenario == "kill":
            # The log client's batch, sent to the dead child before the metric flush
            # replaced it, fails only now.
            writer.process._discard(first)
    elif scenario == "stopped":
        _record(5)
        seen["flushed"] = flush_metrics()
        seen["first_pid"] = writer.pid
        writer.process.reply_timeout = 1.0
        os.kill(writer.pid, signal.SIGSTOP)
        _record(5, start=5)
        seen["flushes"] = _until_flushed()
        seen["second_pid"] = writer.pid
    elif scenario == "unavailable":
        from django.db import connection

        _record(5)
        seen["flushed"] = flush_metrics()
        seen["first_pid"] = writer.pid
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE retail_metric RENAME TO retail_metric_away")
        _record(5, start=5)
        seen["flushes"] = [flush_metrics()]  # the child's INSERT fails: no such table
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE retail_metric_away RENAME TO retail_metric")
        seen["flushes"] += _until_flushed()
        seen["second_pid"] = writer.pid
    elif scenario == "answer-lost":
        from django.db import connection

        from retail.writer_process import WriterProcessError

        _record(5)
        seen["flushed"] = flush_metrics()
        seen["first_pid"] = writer.pid
        request = writer.process.request

        def commit_then_die(name, payload):
            request(name, payload)  # the child commits and answers...
            os.kill(writer.pid, signal.SIGKILL)  # ...and dies before the answer is read
            raise WriterProcessError("the writer process died before its answer was read")

        writer.process.request = commit_then_die
        _record(5, start=5)
        seen["flushes"] = [flush_metrics()]
        del writer.process.request
        _until_dead(seen["first_pid"])
        # The retry, with new rows, fails once more with an answer (the table is gone)...
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE retail_metric RENAME TO retail_metric_away")
        _record(3, start=10)
        seen["flushes"].append(flush_metrics())
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE retail_metric_away RENAME TO retail_metric")
        # ...then meets a row the database refuses, so the buffer halves it.
        _get_buffer().add((None, 99.0, {}, datetime.now(UTC)))
        _record(2, start=13)
        seen["flushes"] += _until_flushed()
        seen["second_pid"] = writer.pid
        seen["unanswered_left"] = len(writer._unanswered)
    elif scenario == "refused":
        buffer = _get_buffer()
        now = datetime.now(UTC)
        for n in range(10):
            buffer.add(("stock_conflicts", float(n), {"n": n}, now))
            if n == 4:
                buffer.add((None, 99.0, {}, now))  # NOT NULL: the database refuses it
        seen["flushed"] = flush_metrics()
        buffer.add(("stock_conflicts", 98.0, {"n": object()}, now))  # not JSON
        buffer.add(("stock_conflicts", 10.0, {"n": 10}, now))
        seen["flushed_unwritable"] = flush_metrics()
    elif scenario == "reconfigured":
        # A second django.setup() (config.wsgi imported after it) closes the first handler.
        import logging.config

        from django.conf import settings

        logging.config.dictConfig(settings.LOGGING)
        _record(5)
        seen["flushed"] = flush_metrics()
        seen["first_pid"] = writer.pid
        logging.config.dictConfig(settings.LOGGING)
        _record(5, start=5)
        seen["flushes"] = _until_flushed()
        seen["second_pid"] = writer.pid
    elif scenario.startswith("logs"):
        stderr, sys.stderr = sys.stderr, io.StringIO()
        try:
            _logs_scenario(scenario, seen)
        finally:
            seen["stderr"], sys.stderr = sys.stderr.getvalue(), stderr
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])), flush=True)
