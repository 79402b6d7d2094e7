"""Cost of observability: requests/s of `GET /api/products/<id>/` through the full WSGI stack.

Three variants, each in its own warm process on its own copy of one SQLite database,
measured in alternating rounds so that a noisy neighbour hits all of them alike:

- `off`:   RETAIL_OBSERVABILITY=off (the middleware still sets X-Request-ID);
- `on`:    production settings: two JSON records per request to stdout and
           application.log (formatted once, written in batches), one metric row per
           request through the buffered recorder;
- `naive`: the ADR's first design: python-json-logger's JsonFormatter on a stdout
           handler and a file handler (each formatting every record) and one
           synchronous INSERT per metric.

A round's time includes writing whatever the variant buffered (flush of logs and
metrics), so deferred work is paid inside the measurement. stdout of the server
processes goes to a file, as a container runtime would take it.

    python bench/middleware.py [--rounds 15] [--requests 400] [--json] [--postgres-url URL]
"""

import argparse
import io
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend"
VARIANTS = ("off", "on", "naive")


def _environ(path: str) -> dict:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _naive_logging(log_dir: str) -> None:
    """Configure logging as the ADR first describes it: every handler formats every record."""
    import logging.config

    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"request_id": {"()": "retail.logging.RequestIDFilter"}},
            "formatters": {
                "json": {
                    "()": "pythonjsonlogger.json.JsonFormatter",
                    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                }
            },
            "handlers": {
                "console": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stdout",
                    "formatter": "json",
                    "filters": ["request_id"],
                },
                "file": {
                    "class": "concurrent_log_handler.ConcurrentRotatingFileHandler",
                    "filename": os.path.join(log_dir, "application.log"),
                    "maxBytes": 50 * 1024 * 1024,
                    "backupCount": 10,
                    "formatter": "json",
                    "filters": ["request_id"],
                },
            },
            "root": {"handlers": ["console", "file"], "level": "INFO"},
        }
    )


def _serve(variant: str, database_url: str, log_dir: str, conn) -> None:
    """Run in a child process: answer `run N` commands with the seconds N requests took."""
    stdout = open(os.path.join(log_dir, "stdout.log"), "a")  # noqa: SIM115
    os.dup2(stdout.fileno(), 1)
    os.environ.update(
        DATABASE_URL=database_url,
        RETAIL_LOG_DIR=log_dir,
        RETAIL_OBSERVABILITY="off" if variant == "off" else "on",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    sys.path[:0] = [str(BACKEND), str(ROOT)]
    import django

    django.setup()
    from catalog.models import Product
    from config.wsgi import application
    from retail.logging import flush_logs
    from retail.metrics import flush_metrics, set_synchronous_metrics

    if variant == "naive":
        _naive_logging(log_dir)
        set_synchronous_metrics(True)
    product_id = Product.objects.order_by("id").values_list("id", flat=True).first()
    template = _environ(f"/api/products/{product_id}/")

    def call() -> None:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(b"")
        statuses = []
        result = application(
            environ, lambda status, headers, exc_info=None: statuses.append(status)
        )
        b"".join(result)
        result.close()
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"{variant}: unexpected answer {statuses[0]}")

    for _ in range(200):
        call()
    flush_metrics()
    flush_logs()
    conn.send("ready")
    while True:
        command = conn.recv()
        if command is None:
            break
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(command):
            call()
        flush_metrics()
        flush_logs()
        conn.send((time.perf_counter() - started, time.process_time() - cpu_started))
    conn.close()


def _prepare_database(database_url: str, workdir: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "RETAIL_LOG_DIR": str(workdir)}
    manage = [sys.executable, str(BACKEND / "manage.py")]
    for command in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        subprocess.run(manage + command, env=env, check=True, stdout=subprocess.DEVNULL)


def _databases(stack: ExitStack, workdir: Path, postgres: str | None) -> dict[str, str]:
    """Return one migrated, seeded database URL per variant (SQLite copies or PG databases)."""
    if postgres:
        sys.path.insert(0, str(ROOT))
        from tests.support.databases import throwaway_postgres

        urls = {variant: stack.enter_context(throwaway_postgres(postgres)) for variant in VARIANTS}
        for url in urls.values():
            _prepare_database(url, workdir)
        return urls
    base = workdir / "base.sqlite3"
    _prepare_database(f"sqlite:///{base}", workdir)
    urls = {}
    for variant in VARIANTS:
        copy = workdir / f"{variant}.sqlite3"
        with sqlite3.connect(base) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        urls[variant] = f"sqlite:///{copy}"
    return urls


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open() as lines:
        return sum(1 for _ in lines)


def measure(rounds: int, requests: int, postgres: str | None = None) -> dict:
    """Measure requests/s of each variant in alternating rounds; return the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="retail-bench-middleware-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        urls = _databases(stack, workdir, postgres)
        context = multiprocessing.get_context("spawn")
        workers = {}
        for variant in VARIANTS:
            log_dir = workdir / variant
            log_dir.mkdir()
            parent, child = context.Pipe()
            process = context.Process(
                target=_serve, args=(variant, urls[variant], str(log_dir), child)
            )
            process.start()
            workers[variant] = (process, parent)
        for variant, (_, conn) in workers.items():
            if not conn.poll(120) or conn.recv() != "ready":
                raise RuntimeError(f"{variant} server did not start")
        seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        cpu_seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for _ in range(rounds):
            for variant, (_, conn) in workers.items():
                conn.send(requests)
                wall, cpu = conn.recv()
                seconds[variant].append(wall)
                cpu_seconds[variant].append(cpu)
        for process, conn in workers.values():
            conn.send(None)
            process.join(timeout=30)
        log_lines = {
            variant: _count_lines(workdir / variant / "application.log") for variant in VARIANTS
        }
    rps = {variant: requests / statistics.median(seconds[variant]) for variant in VARIANTS}
    # CPU time of the whole process (all its threads): the cost, free of a busy neighbour.
    cpu_us = {
        variant: statistics.median(cpu_seconds[variant]) / requests * 1e6 for variant in VARIANTS
    }
    return {
        "endpoint": "GET /api/products/<id>/",
        "database": "postgresql" if postgres else "sqlite",
        "rounds": rounds,
        "requests_per_round": requests,
        "rps_off": round(rps["off"], 1),
        "rps_on": round(rps["on"], 1),
        "rps_naive": round(rps["naive"], 1),
        "us_per_request_off": round(1e6 / rps["off"], 1),
        "us_per_request_on": round(1e6 / rps["on"], 1),
        "us_per_request_naive": round(1e6 / rps["naive"], 1),
        "rps_spread": {
            variant: [
                round(requests / max(seconds[variant]), 1),
                round(requests / min(seconds[variant]), 1),
            ]
            for variant in VARIANTS
        },
        "cpu_us_per_request": {variant: round(cpu_us[variant], 1) for variant in VARIANTS},
        "ratio_on_off": round(rps["on"] / rps["off"], 3),
        "cpu_ratio_on_off": round(cpu_us["off"] / cpu_us["on"], 3),
        "ratio_naive_off": round(rps["naive"] / rps["off"], 3),
        "target_ratio_on_off": 0.90,
        "log_lines": log_lines,
    }


def _table(figures: dict) -> str:
    rows = [
        ("off (RETAIL_OBSERVABILITY=off)", "rps_off", "us_per_request_off", None),
        ("on (buffered, format once)", "rps_on", "us_per_request_on", "ratio_on_off"),
        (
            "naive (ADR: 2 handlers, sync INSERT)",
            "rps_naive",
            "us_per_request_naive",
            "ratio_naive_off",
        ),
    ]
    lines = [
        f"{figures['endpoint']} on {figures['database']}, median of {figures['rounds']} "
        f"rounds x {figures['requests_per_round']} requests",
        f"{'variant':<40}{'req/s':>10}{'µs/req':>10}{'vs off':>10}{'CPU µs/req':>12}   req/s range",
    ]
    for label, rps, us, ratio in rows:
        shown = f"{figures[ratio]:.3f}" if ratio else "1.000"
        variant = rps.removeprefix("rps_")
        low, high = figures["rps_spread"][variant]
        cpu = figures["cpu_us_per_request"][variant]
        lines.append(
            f"{label:<40}{figures[rps]:>10.1f}{figures[us]:>10.1f}{shown:>10}{cpu:>12.1f}"
            f"   {low:.0f}-{high:.0f}"
        )
    verdict = "PASS" if figures["ratio_on_off"] >= figures["target_ratio_on_off"] else "FAIL"
    lines.append(
        f"target on/off >= {figures['target_ratio_on_off']:.2f}: {verdict} "
        f"(req/s ratio {figures['ratio_on_off']:.3f}; "
        f"CPU-time ratio {figures['cpu_ratio_on_off']:.3f})"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=400, help="requests per round")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--postgres-url",
        metavar="SERVER_URL",
        help="run on throwaway databases of this PostgreSQL server instead of SQLite",
    )
    args = parser.parse_args()
    figures = measure(args.rounds, args.requests, args.postgres_url)
    print(json.dumps(figures) if args.json else _table(figures))


if __name__ == "__main__":
    main()
