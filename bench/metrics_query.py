"""Benchmark `retailctl metrics --days 7 --json` on 10 million metric rows over 30 days.

Builds var/bench/metrics-<rows>.sqlite3 once (reused): the real migrations, then rows
generated in SQL with the rollup triggers dropped, the rollup rebuilt with the
migration's own backfill statement and the triggers put back. Times the CLI as an
operator runs it (a fresh process): median of 5 runs after one warm-up. Target: < 1 s.
Also checks the answer against plain queries over the raw rows, and times those.
With --postgres (and RETAIL_TEST_POSTGRES_URL set) does the same on PostgreSQL.
Usage: python bench/metrics_query.py [--rows 10000000] [--postgres] [--json]
"""

import argparse
import importlib.util
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
_MIGRATION = PROJECT_ROOT / "backend" / "retail" / "migrations" / "0002_metric_rollup.py"
DAYS = 30

# Traffic-shaped rows: ~82% response times (skewed ms), ~12% errors, a few others.
_GENERATE = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows),
r AS (SELECT i, abs(random()) % 100 AS kind, abs(random()) % 8 AS route,
             abs(random()) % (:days * 86400) AS age, abs(random()) % 1000 AS a,
             abs(random()) % 1000 AS b FROM n)
INSERT INTO retail_metric (metric_type, value, metadata, recorded_at)
SELECT CASE WHEN kind < 82 THEN 'avg_response_time' WHEN kind < 94 THEN 'error_rate'
            WHEN kind < 97 THEN 'throttled_requests' WHEN kind < 99 THEN 'stock_conflicts'
            ELSE 'orders_per_day' END,
       CASE WHEN kind < 82 THEN (a + 1) * (b + 1) / 400.0 + 1 ELSE 1.0 END,
       json_object('method', 'GET', 'path', '/api/route-' || route || '/',
                   'status_code', CASE WHEN kind < 82 THEN 200 ELSE 404 END),
       strftime('%Y-%m-%d %H:%M:%f', :now - age - (a / 1000.0), 'unixepoch')
FROM r
"""


def _migration():
    spec = importlib.util.spec_from_file_location("rollup_migration", _MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _migrate(url: str) -> None:
    subprocess.run(
        [sys.executable, "backend/manage.py", "migrate", "--noinput", "--skip-checks", "-v0"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
    )


def build_sqlite(rows: int) -> Path:
    path = BENCH_DIR / f"metrics-{rows}.sqlite3"
    if path.exists():
        return path
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    _migrate(f"sqlite:///{partial}")
    migration = _migration()
    started = time.perf_counter()
    conn = sqlite3.connect(partial, isolation_level=None)
    # A throwaway file being built: no journal, no fsync (WAL again at the end).
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    conn.execute("BEGIN")
    for name in ("ins", "del", "upd"):
        conn.execute(f"DROP TRIGGER retail_metric_rollup_{name}")
    # Indexes are built once after the load: far faster than 10M random index inserts.
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
        "AND tbl_name = 'retail_metric' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute(_GENERATE, {"rows": rows, "days": DAYS, "now": time.time()})
    for _, sql in indexes:
        conn.execute(sql)
    conn.execute("DELETE FROM retail_metric_rollup")
    conn.execute(migration._backfill_sql("sqlite"))
    for statement in migration._sqlite_statements():
        conn.execute(statement)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    partial.rename(path)
    print(f"built {path.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path


def _raw_baseline(url: str) -> dict:
    """Time the plain queries over raw rows that the rollups replace, and keep their answers."""
    from sqlalchemy import create_engine, text

    from retailctl.core.db import database_url_resolve

    engine = create_engine(database_url_resolve(url))
    with engine.connect() as conn:
        start = conn.execute(text("SELECT min(day) FROM retail_metric_rollup")).scalar()
        since = "datetime('now', 'start of day', '-6 days')"
        if conn.dialect.name == "postgresql":
            since = (
                "date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '6 days'"
            )
        began = time.perf_counter()
        rows = conn.execute(
            text(
                "SELECT metric_type, count(*), avg(value) FROM retail_metric "
                f"WHERE recorded_at >= {since} GROUP BY metric_type"
            )
        ).all()
        seconds = time.perf_counter() - began
    engine.dispose()
    return {
        "first_day": str(start),
        "counts": {kind: count for kind, count, _ in rows},
        "averages": {kind: avg for kind, _, avg in rows},
        "count_by_type_s": round(seconds, 3),
    }


def _time_cli(url: str, runs: int) -> tuple[list[float], dict]:
    command = [
        sys.executable,
        "-m",
        "retailctl",
        "metrics",
        "--days",
        "7",
        "--json",
        "--database-url",
        url,
    ]
    subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, check=True)  # warm-up
    times, document = [], {}
    for _ in range(runs):
        began = time.perf_counter()
        completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - began)
        document = json.loads(completed.stdout)
    return times, document


def measure(label: str, url: str, runs: int) -> dict:
    times, document = _time_cli(url, runs)
    raw = _raw_baseline(url)
    kpis = document["kpis"]
    agrees = kpis["requests_total"] == raw["counts"].get("avg_response_time", 0) and kpis[
        "errors_total"
    ] == raw["counts"].get("error_rate", 0)
    return {
        "database": label,
        "cli_median_s": round(statistics.median(times), 3),
        "cli_runs_s": [round(t, 3) for t in times],
        "requests_in_window": kpis["requests_total"],
        "p99_ms": kpis["p99_response_time_ms"],
        "raw_count_avg_by_type_s": raw["count_by_type_s"],
        "agrees_with_raw_counts": agrees,
        "target_met": statistics.median(times) < 1.0 and agrees,
    }


def build_postgres(rows: int, server_url: str) -> str:
    import psycopg

    name = f"retail_bench_{rows}"
    base = server_url.rpartition("/")[0]
    url = f"{base}/{name}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        return url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        # Generated in one statement: the statement-level trigger folds it in one go.
        conn.execute(
            """
            INSERT INTO retail_metric (metric_type, value, metadata, recorded_at)
            SELECT CASE WHEN k < 82 THEN 'avg_response_time' WHEN k < 94 THEN 'error_rate'
                        WHEN k < 97 THEN 'throttled_requests' WHEN k < 99 THEN 'stock_conflicts'
                        ELSE 'orders_per_day' END,
                   CASE WHEN k < 82 THEN (a + 1) * (b + 1) / 400.0 + 1 ELSE 1.0 END,
                   jsonb_build_object('method', 'GET', 'path', '/api/route-' || r || '/',
                                      'status_code', CASE WHEN k < 82 THEN 200 ELSE 404 END),
                   now() - make_interval(secs => age)
            FROM (SELECT floor(random() * 100)::int AS k, floor(random() * 8)::int AS r,
                         random() * %s AS age, floor(random() * 1000) AS a,
                         floor(random() * 1000) AS b
                  FROM generate_series(1, %s)) AS g
            """,
            (DAYS * 86400, rows),
        )
        conn.execute("ANALYZE")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also on RETAIL_TEST_POSTGRES_URL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure("sqlite", f"sqlite:///{build_sqlite(args.rows)}", args.runs)]
    server = os.environ.get("RETAIL_TEST_POSTGRES_URL")
    if args.postgres and server:
        results.append(measure("postgresql", build_postgres(args.rows, server), args.runs))
    if args.json:
        print(json.dumps({"rows": args.rows, "days": DAYS, "results": results}))
        return
    print(f"{args.rows:,} metric rows over {DAYS} days; `retailctl metrics --days 7 --json`")
    header = f"{'database':<12}{'median s':>10}{'raw c+avg s':>13}{'requests':>12}{'p99 ms':>10}"
    print(header + "  target < 1 s")
    for r in results:
        print(
            f"{r['database']:<12}{r['cli_median_s']:>10.3f}{r['raw_count_avg_by_type_s']:>13.3f}"
            f"{r['requests_in_window']:>12,}{r['p99_ms']:>10}  "
            f"{'met' if r['target_met'] else 'NOT met'} "
            f"(agrees with raw: {r['agrees_with_raw_counts']})"
        )


if __name__ == "__main__":
    main()
