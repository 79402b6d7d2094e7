"""A server-like process whose metric rows go through the writer process (RETAIL_METRICS_WRITER).

`python tests/support/metric_writer_driver.py SCENARIO` with a backend environment
(tests.support.servers.backend_env); prints one JSON object of what it saw, then exits
normally, so that its atexit handlers write what it still holds. Driven by
tests/unit/retail/test_metric_writer.py.
"""

import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "backend"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from retail.metrics import _get_buffer, flush_metrics, record_metric  # noqa: E402


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


def _until_dead(writer, deadline_seconds: float = 10) -> None:
    deadline = time.monotonic() + deadline_seconds
    while writer._process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


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
        os.kill(writer.pid, signal.SIGKILL if scenario == "kill" else signal.SIGTERM)
        if scenario == "kill":
            _until_dead(writer)
        _record(10, start=10)
        seen["flushes"] = _until_flushed()
        seen["second_pid"] = writer.pid
    elif scenario == "stopped":
        _record(5)
        seen["flushed"] = flush_metrics()
        seen["first_pid"] = writer.pid
        writer.reply_timeout = 1.0
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
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])), flush=True)
