"""Read-side selectors of the staff pages: the same retailctl core functions as the CLI.

The engine is built from Django's DATABASES setting, so the dashboard, /metrics/api/ and
`retailctl metrics` run identical queries over identical data.
"""

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from retailctl.core.alerts import alerts_firing
from retailctl.core.anomalies import Verdict, anomalies_find
from retailctl.core.dashboard import Span, dashboard_delta, dashboard_snapshot
from retailctl.core.error_groups import error_groups_document
from retailctl.core.logs import TraceResult, trace_search
from retailctl.core.metrics import MetricsReport, metrics_summary
from retailctl.core.scenarios import scenarios_verify
from retailctl.core.traces import TraceRow, trace_rows

_engines: dict[tuple, Engine] = {}
_lock = threading.Lock()


def _engine() -> Engine:
    db = settings.DATABASES["default"]
    key = (db["ENGINE"], db["NAME"], db.get("USER"), db.get("HOST"), db.get("PORT"))
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _engine_for(db)
        return engine


def _engine_for(db: dict[str, Any]) -> Engine:
    name = str(db["NAME"])
    if db["ENGINE"].endswith("sqlite3"):
        if name.startswith("file:"):
            # The test runner's shared in-memory database is reachable only by URI.
            return create_engine(
                "sqlite://",
                creator=lambda: sqlite3.connect(name, uri=True, check_same_thread=False),
                poolclass=NullPool,
            )
        return create_engine(URL.create("sqlite", database=name), connect_args={"timeout": 20})
    url = URL.create(
        "postgresql+psycopg",
        username=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=int(db["PORT"]) if db.get("PORT") else None,
        database=name,
    )
    # Staff pages and scrapes are rare: a connection per call keeps no idle sessions
    # in every worker (which also block DROP DATABASE in tests) for a few ms each.
    return create_engine(url, poolclass=NullPool)


def metrics_report(*, days: int) -> MetricsReport:
    """Return the KPI report of the last `days` days (as `retailctl metrics`)."""
    with _engine().connect() as conn:
        return metrics_summary(conn, days=days)


def metrics_document(*, days: int) -> dict[str, Any]:
    """Return SPEC §4's metrics document (as `retailctl metrics --json`)."""
    return metrics_report(days=days).to_document()


@contextmanager
def read_model() -> Iterator[Connection]:
    """Open one read-model connection, for a page that calls several core functions."""
    with _engine().connect() as conn:
        yield conn


def scenarios_document(*, days: int) -> dict[str, dict[str, Any]]:
    """Return the A1/A2 verdicts (as `retailctl scenarios --json`)."""
    with _engine().connect() as conn:
        return scenarios_verify(conn, days=days)


def error_groups_top(*, days: int, limit: int = 10) -> list[dict[str, Any]]:
    """Return the most frequent error groups of the last `days` days (as `retailctl errors`)."""
    with _engine().connect() as conn:
        return error_groups_document(conn, days=days, limit=limit)["groups"]


def alerts_firing_document() -> list[dict[str, Any]]:
    """Return the rules firing as `retailctl alert` last left them."""
    with _engine().connect() as conn:
        return [state.to_document() for state in alerts_firing(conn)]


def anomalies_recent(*, days: int = 1) -> list[Verdict]:
    """Return the hours of the last `days` days that stood out (as `retailctl anomalies`)."""
    with _engine().connect() as conn:
        return anomalies_find(conn, days=days, now=datetime.now(UTC))


def dashboard_document(*, span: Span, now: datetime | None = None) -> dict[str, Any]:
    """Return the live dashboard's document over the last `span.range`."""
    end = now or datetime.now(UTC)
    with _engine().connect() as conn:
        document = dashboard_snapshot(
            conn, start=end - span.range, end=end, resolution=span.resolution
        )
    return {**document, "range": span.range_text, "range_seconds": span.range.total_seconds()}


def dashboard_changes(*, since: datetime, now: datetime, resolution: str) -> dict[str, Any]:
    """Return what changed on the dashboard since `since` (a live stream's delta)."""
    with _engine().connect() as conn:
        return dashboard_delta(conn, since=since, now=now, resolution=resolution)


def request_trace(*, request_id: str) -> tuple[TraceResult, list[TraceRow]]:
    """Return one request's log records across services and their rows (as `retailctl trace`)."""
    result = trace_search(Path(settings.RETAIL_LOG_DIR), request_id)
    return result, trace_rows(result.records)
