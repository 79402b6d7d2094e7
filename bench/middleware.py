"""Cost of observability under continuous load: `GET /api/products/<id>/`, on against off.

P1 is requests/s with observability on over requests/s with it off (RETAIL_OBSERVABILITY=off,
the kill switch: X-Request-ID is still set). Two measurements, each alternating its variants
so that a busy neighbour hits them alike, each printing its spread:

- In-process: each variant is a warm process on its own copy of one database, driving the
  full WSGI stack from one request thread as fast as it can. The variants time-share the
  machine: one process runs for a slice (`--slice`, half a second) while the others are
  frozen (SIGSTOP, every thread), then the next, round and round. A shared VM's speed drifts
  by half within seconds; within a second every variant gets the same machine. Each process
  pays its own deferred work: its writer threads format, write and insert beside its
  requests in its slices, with nothing flushed by hand, and what it still holds at the end
  is written inside its measurement. A quarter of the slices come first, untimed, to reach
  the steady state. CPU is the whole process's (every thread, shown per thread) and its
  writer process's (frozen and thawed with it), plus, on PostgreSQL, the database
  backends serving the variant's database. One process runs up
  to a fifth faster or slower than the next for its whole life, whatever it runs (its
  memory layout, its hash seed), so each variant runs in `--processes` processes per run,
  each on its own copy of the database, pooled; every run starts new ones.
- gunicorn: started as `make serve` starts it (its command line read from the Makefile,
  the worker settings from backend/config/gunicorn.py), on a free port, under a
  closed-loop load generator in its own process at fixed concurrency; requests/s and CPU
  per request of the server's process tree (master, workers and their writer
  processes, every thread, plus the database backends on PostgreSQL). The generator's CPU
  is reported apart. A run starts `off` and `on` side by side, each with its own
  generator, and time-shares the machine between them in the same slices (the other
  server and its generator frozen); the `--server-seconds` are each variant's timed share.

Variants: `off`; `on` (production settings: two JSON records per request to stdout and
application.log, one metric row per request); `otel` (on, plus OpenTelemetry spans exported
over OTLP/HTTP to a local receiver that discards them; issue 12's row); with
`--thread-writer`, `thread` (on, with the metric rows inserted and the log lines
formatted and written by the process's own threads, RETAIL_METRICS_WRITER=thread and
RETAIL_LOG_WRITER=thread, in-process only); with `--naive`,
`naive` (the ADR's first design: python-json-logger on a stdout and a file handler, one
synchronous INSERT per metric). stdout of every server goes to a file, as a container
runtime takes it. SQLite by default; `--postgres-url SERVER_URL` runs the same on throwaway
databases of that server. A run's P1 is its requests/s on over off, each over all its timed
slices. The long series: `--runs 10 --server-runs 10`.

    python bench/middleware.py [--runs 1] [--seconds 20] [--slice 0.5] [--processes 3]
        [--server-runs 1]
        [--server-seconds 20] [--concurrency 4] [--thread-writer] [--naive]
        [--postgres-url URL] [--json]
"""

import argparse
import asyncio
import ctypes
import gc
import io
import json
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, suppress
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BACKEND = ROOT / "backend"
sys.path.insert(0, str(ROOT))
from tests.support.databases import throwaway_postgres  # noqa: E402
from tests.support.servers import wait_for  # noqa: E402

TARGET_MEDIAN, TARGET_WORST = 0.90, 0.85
SERVER_WARMUP_SECONDS = 3.0
LABELS = {
    "off": "off (RETAIL_OBSERVABILITY=off)",
    "on": "on",
    "otel": "on + OpenTelemetry export",
    "naive": "naive (ADR: 2 handlers, sync INSERT)",
    "thread": "on, writers in-process (threads)",
}


# --- in-process ------------------------------------------------------------------------


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


def _server_environment(variant: str, database_url: str, log_dir: Path, otlp_url: str) -> dict:
    """Return the environment of a server of `variant`: nothing else of the caller's leaks in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RETAIL_", "DJANGO_", "OTEL_")) and key != "DATABASE_URL"
    }
    env.update(
        DATABASE_URL=database_url,
        RETAIL_LOG_DIR=str(log_dir),
        RETAIL_OBSERVABILITY="off" if variant == "off" else "on",
    )
    if variant == "otel":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_url
    if variant == "thread":
        env.update(RETAIL_METRICS_WRITER="thread", RETAIL_LOG_WRITER="thread")
    return env


class _DatabaseBackends:
    """CPU seconds of the PostgreSQL backends serving one database (none on SQLite).

    The server runs on this host, so its backend processes are readable like any other.
    A backend that exits inside a window takes its CPU along; the recorder and the
    request threads keep theirs open (CONN_MAX_AGE), so none does in practice.
    """

    def __init__(self, database_url: str) -> None:
        self._conn = None
        if database_url.startswith("postgres"):
            import psycopg

            self._conn = psycopg.connect(database_url, autocommit=True)

    def cpu(self) -> dict[int, float]:
        if self._conn is None:
            return {}
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        return {pid: _cpu_seconds(pid) for (pid,) in rows}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def _cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _serve(variant: str, env: dict, log_dir: str, conn, served, stopping) -> None:
    """Run in a child process: serve requests back to back until `stopping` is set.

    The parent freezes and thaws this process (SIGSTOP, SIGCONT) to give it its slices of
    the machine; `served` counts the requests answered, for the parent to read while the
    process is frozen. At the end the process writes what it still holds (timed, so the
    parent adds that work to the variant's) and reports what only it can see.
    """
    stdout = open(os.path.join(log_dir, "stdout.log"), "a")  # noqa: SIM115
    os.dup2(stdout.fileno(), 1)
    os.environ.clear()
    os.environ.update(env, DJANGO_SETTINGS_MODULE="config.settings")
    sys.path[:0] = [str(BACKEND), str(ROOT)]
    import threading

    import django

    django.setup()
    from catalog.models import Product
    from config.wsgi import application
    from retail.logging import flush_logs
    from retail.metrics import flush_metrics, set_synchronous_metrics
    from retail.tracing import flush_spans

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

    def drain() -> None:
        flush_metrics()
        flush_logs()
        flush_spans()

    for _ in range(300):
        call()
    drain()
    # The writer threads started with the first requests; the parent reads their CPU
    # from /proc by thread ID and names them with this map.
    conn.send({thread.native_id: thread.name for thread in threading.enumerate()})
    if conn.recv() != "go":
        return
    gcs = gc.get_stats()
    while not stopping.value:
        for _ in range(20):
            call()
        served.value += 20
    started = time.perf_counter()
    drain()
    conn.send(
        {
            "drain_wall": time.perf_counter() - started,
            "served": served.value,
            "gc": [
                after["collections"] - before["collections"]
                for before, after in zip(gcs, gc.get_stats(), strict=True)
            ],
        }
    )
    # Alive until told: the parent reads the CPU this process spent writing.
    try:
        conn.recv()
    except EOFError:
        pass


def _freeze(pids: list[int], what: str) -> None:
    """Stop every thread of `pids` (SIGSTOP) and wait until each is stopped.

    A process that exited meanwhile (a variant that crashed) is an error: its slices
    would count no requests, and the run would measure nothing.
    """
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while not all(_stopped(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not stop")
            time.sleep(0.0002)
    except (ProcessLookupError, FileNotFoundError, _Exited) as exc:
        raise RuntimeError(f"{what} exited during its slice") from exc


class _Exited(Exception):
    pass


def _stopped(pid: int) -> bool:
    # Every thread, not only the main one: a writer still running would add its work to
    # the next variant's slice.
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            state = (task / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state in ("Z", "X"):
            raise _Exited(pid)
        if state not in ("T", "t"):
            return False
    return True


def _thaw(pids: list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _thawed_for(seconds: float, pids: list[int], what: str) -> float:
    """Let `pids` run for `seconds`, then freeze them; return the wall time they ran."""
    started = time.perf_counter()
    _thaw(pids)
    time.sleep(seconds)
    _freeze(pids, what)
    return time.perf_counter() - started


class _Frozen:
    """A variant's server process, frozen except during the slices the parent gives it."""

    def __init__(self, variant: str, env: dict, log_dir: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.variant = variant
        self.served = context.RawValue(ctypes.c_long, 0)
        self.stopping = context.RawValue(ctypes.c_bool, False)
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve,
            args=(variant, env, log_dir, child, self.served, self.stopping),
            daemon=True,
        )
        self.process.start()
        self.backends = _DatabaseBackends(env["DATABASE_URL"])
        self.thread_names: dict[int, str] = {}

    def wait_ready(self) -> None:
        if not self.conn.poll(180):
            raise RuntimeError(f"{self.variant} server did not start")
        self.thread_names = self.conn.recv()

    def go(self) -> None:
        """Start serving, then freeze at once: the first slice thaws it."""
        self.conn.send("go")
        self.freeze()

    def _helpers(self) -> list[psutil.Process]:
        # The writer process (retail/writer_process.py), or any other child.
        return psutil.Process(self.process.pid).children(recursive=True)

    def slice(self, seconds: float) -> float:
        """Let the process serve for `seconds`; return the wall time it was thawed."""
        wall = _thawed_for(seconds, self._pids(), self.variant)
        self.freeze()  # a helper started during the slice
        return wall

    def freeze(self) -> None:
        _freeze(self._pids(), self.variant)

    def _pids(self) -> list[int]:
        return [self.process.pid, *(helper.pid for helper in self._helpers())]

    def snapshot(self) -> dict:
        """What the frozen process and its helper processes have spent so far."""
        process = psutil.Process(self.process.pid)
        times = process.cpu_times()
        helpers = {helper.pid: _cpu_seconds(helper.pid) for helper in self._helpers()}
        switches = 0
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    switches += int(line.split()[1])
        threads = {
            self.thread_names.get(thread.id, "other"): thread.user_time + thread.system_time
            for thread in process.threads()
        }
        if helpers:
            threads["writer process"] = sum(helpers.values())
        return {
            "served": self.served.value,
            "cpu": times.user + times.system + sum(helpers.values()),
            "threads": threads,
            "database": self.backends.cpu(),
            "switches": switches,
        }

    def finish(self) -> tuple[float, dict]:
        """Stop serving, let the process write what it holds; return the wall time and report."""
        self.stopping.value = True
        started = time.perf_counter()
        _thaw(self._pids())  # its last flush waits on its writer process
        if not self.conn.poll(120):
            raise RuntimeError(f"{self.variant} server did not finish")
        report = self.conn.recv()
        return time.perf_counter() - started, report

    def close(self) -> None:
        self.stopping.value = True
        if self.process.is_alive():
            _thaw(self._pids())
        self.conn.close()
        self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()
        self.backends.close()


def _in_process_run(
    variants: tuple[str, ...],
    urls: dict[str, list[str]],
    workdir: Path,
    otlp: "_OtlpReceiver",
    run: int,
    seconds: float,
    slice_seconds: float,
) -> dict[str, dict]:
    """Time-share the machine between the variants' processes in slices; return figures.

    Only one process runs at a time, the others frozen with every thread: the machine's
    speed, which drifts by half on a shared VM within seconds, is then the same for every
    variant within a second, and each pays its own deferred work (the writers run beside
    its requests in its slices; what it still holds at the end is written inside its
    measurement). A process's own speed differs from the next one's by up to a fifth for
    its whole life, whatever it runs (its memory layout, its hash seed: what pyperf spawns
    many processes for), so each variant runs in several processes per run (`urls` holds
    a database for each), pooled; every run starts new ones, on the databases as the
    earlier runs left them.
    """
    servers: list[_Frozen] = []
    try:
        for number in range(len(urls[variants[0]])):
            for variant in variants:
                log_dir = workdir / f"in-process-{variant}-{number}"
                log_dir.mkdir(exist_ok=True)
                env = _server_environment(variant, urls[variant][number], log_dir, otlp.url)
                servers.append(_Frozen(variant, env, str(log_dir)))
        for server in servers:
            server.wait_ready()
            server.go()
        cycles = max(1, round(seconds / slice_seconds / len(urls[variants[0]])))
        for _ in range(max(1, cycles // 4)):
            for server in servers:
                server.slice(slice_seconds)
        before = [server.snapshot() for server in servers]
        receiver_before = otlp.cpu()
        walls = [0.0] * len(servers)
        cycle_rps: dict[str, list[float]] = {variant: [] for variant in variants}
        for cycle in range(cycles):
            # Each cycle starts with the next process, so none always follows the same one.
            shift = (run + cycle) % len(servers)
            cycle_served = dict.fromkeys(variants, 0)
            cycle_wall = dict.fromkeys(variants, 0.0)
            for index in [*range(shift, len(servers)), *range(shift)]:
                server = servers[index]
                served = server.served.value
                wall = server.slice(slice_seconds)
                walls[index] += wall
                cycle_served[server.variant] += server.served.value - served
                cycle_wall[server.variant] += wall
            for variant in variants:
                cycle_rps[variant].append(cycle_served[variant] / cycle_wall[variant])
        figures = {
            variant: {
                "requests": 0,
                "wall": 0.0,
                "drain_wall": 0.0,
                "cpu": 0.0,
                "database_cpu": 0.0,
                "threads": {},
                "gc": [0, 0, 0],
                "loop_requests": 0,
                "context_switches": 0,
                "cycle_rps": cycle_rps[variant],
                "processes": 0,
            }
            for variant in variants
        }
        for index, server in enumerate(servers):
            drain_wall, report = server.finish()
            after, start = server.snapshot(), before[index]
            own = figures[server.variant]
            own["processes"] += 1
            own["requests"] += after["served"] - start["served"]
            own["wall"] += walls[index] + drain_wall
            own["drain_wall"] += report["drain_wall"]
            own["cpu"] += after["cpu"] - start["cpu"]
            own["database_cpu"] += _cpu_spent(start["database"], after["database"])
            for name, spent in after["threads"].items():
                own["threads"][name] = (
                    own["threads"].get(name, 0.0) + spent - start["threads"].get(name, 0.0)
                )
            own["gc"] = [total + more for total, more in zip(own["gc"], report["gc"], strict=True)]
            own["loop_requests"] += report["served"]
            own["context_switches"] += after["switches"] - start["switches"]
        receiver = otlp.cpu() - receiver_before
        for variant, own in figures.items():
            own["receiver_cpu"] = receiver if variant == "otel" else 0.0
        return figures
    finally:
        for server in servers:
            server.close()


# --- gunicorn ----------------------------------------------------------------------------


def _serve_command() -> list[str]:
    """Return `make serve`'s gunicorn command line, as make expands it."""
    recipe = subprocess.run(
        ["make", "--no-print-directory", "-n", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = [line for line in recipe.splitlines() if "gunicorn" in line]
    if len(lines) != 1:
        raise RuntimeError(f"cannot find the gunicorn command of `make serve` in:\n{recipe}")
    return shlex.split(lines[0])


def _on_free_port(command: list[str]) -> list[str]:
    """Return `command` bound to a port the OS picks instead of `make serve`'s."""
    command = list(command)
    for index, argument in enumerate(command):
        if argument in ("--bind", "-b"):
            command[index + 1] = "127.0.0.1:0"
            return command
        if argument.startswith("--bind="):
            command[index] = "--bind=127.0.0.1:0"
            return command
    return [*command, "--bind", "127.0.0.1:0"]


def _load_clients(port: int, path: str, concurrency: int, stop, completed, failed) -> None:
    """Run in a child process: keep `concurrency` requests in flight until `stop` is set.

    Raw HTTP/1.1 over asyncio streams: the generator shares the machine's cores with the
    server, so it must cost as little per request as it can (an httpx client costs several
    times more). A connection the server closes (`Connection: close`, as sync workers
    answer) is opened again for the next request.
    """
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    content_length = re.compile(rb"(?im)^content-length:\s*(\d+)")
    closes = re.compile(rb"(?im)^connection:\s*close")

    async def client() -> None:
        writer = None
        while not stop.is_set():
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(content_length.search(head).group(1)))
            except (OSError, asyncio.IncompleteReadError, AttributeError):
                failed.value += 1
                writer = None
                await asyncio.sleep(0.01)
                continue
            if head.startswith(b"HTTP/1.1 200"):
                completed.value += 1
            else:
                failed.value += 1
            if closes.search(head):
                writer.close()
                writer = None

    async def main() -> None:
        await asyncio.gather(*(client() for _ in range(concurrency)))

    asyncio.run(main())


def _tree_cpu(master: psutil.Process) -> dict[int, float]:
    """CPU seconds of gunicorn's master (with its reaped workers) and of each live worker."""
    times = master.cpu_times()
    spent = {master.pid: times.user + times.system + times.children_user + times.children_system}
    for child in master.children(recursive=True):
        spent[child.pid] = _cpu_seconds(child.pid)
    return spent


class _Gunicorn:
    """One variant served as `make serve` serves it, with its load generator; all frozen
    (SIGSTOP: master, workers, generator) except during the slices the bench gives it."""

    def __init__(
        self,
        stack: ExitStack,
        variant: str,
        database_url: str,
        workdir: Path,
        otlp: "_OtlpReceiver",
        concurrency: int,
        product_path: str,
    ) -> None:
        self.variant = variant
        self.database_url = database_url
        log_dir = Path(tempfile.mkdtemp(prefix=f"gunicorn-{variant}-", dir=workdir))
        env = _server_environment(variant, database_url, log_dir, otlp.url)
        command = _on_free_port(_serve_command())
        self.workers = int(command[command.index("--workers") + 1]) if "--workers" in command else 1
        stdout = stack.enter_context((log_dir / "stdout.log").open("w"))
        stderr_path = log_dir / "gunicorn.err"
        stderr = stack.enter_context(stderr_path.open("w"))
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        stack.callback(_stop, server)

        def bound_port() -> int | None:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{stderr_path.read_text()[-3000:]}")
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", stderr_path.read_text())
            return int(found.group(1)) if found else None

        port = wait_for(bound_port, timeout=60, what="gunicorn to bind")
        self.master = psutil.Process(server.pid)
        wait_for(
            lambda: len(self.master.children()) == self.workers,
            timeout=60,
            what="every gunicorn worker",
        )
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        self.completed = context.RawValue(ctypes.c_long, 0)
        self.failed = context.RawValue(ctypes.c_long, 0)
        self.generator = context.Process(
            target=_load_clients,
            args=(port, product_path, concurrency, stop, self.completed, self.failed),
        )
        self.generator.start()
        stack.callback(self.generator.join, 30)
        stack.callback(stop.set)
        self.worker_pids = {worker.pid for worker in self.master.children()}
        # Registered last, so it runs first: stopping needs every process thawed.
        stack.callback(lambda: _thaw(self._pids()))
        self.backends = _DatabaseBackends(database_url)
        stack.callback(self.backends.close)
        _freeze(self._pids(), f"gunicorn ({variant})")

    def _pids(self) -> list[int]:
        # The workers' writer processes too, started with their first batches.
        tree = (process.pid for process in self.master.children(recursive=True))
        return [self.generator.pid, self.master.pid, *tree]

    def slice(self, seconds: float) -> float:
        what = f"gunicorn ({self.variant})"
        wall = _thawed_for(seconds, self._pids(), what)
        _freeze(self._pids(), what)  # a writer process started during the slice
        # A worker gunicorn replaced would run unfrozen through the other variant's slices.
        if {worker.pid for worker in self.master.children()} != self.worker_pids:
            raise RuntimeError(f"gunicorn ({self.variant}) replaced a worker during the run")
        return wall

    def snapshot(self) -> dict:
        return {
            "completed": self.completed.value,
            "failed": self.failed.value,
            "tree": _tree_cpu(self.master),
            "database": self.backends.cpu(),
            "generator": _cpu_seconds(self.generator.pid),
        }


def _gunicorn_run(
    databases: "_Databases",
    workdir: Path,
    otlp: "_OtlpReceiver",
    run: int,
    seconds: float,
    slice_seconds: float,
    concurrency: int,
) -> dict[str, dict]:
    """Serve `off` and `on` side by side, time-sharing the machine in slices; return figures."""
    with ExitStack() as stack:
        servers = [
            _Gunicorn(
                stack,
                variant,
                databases.fresh(),
                workdir,
                otlp,
                concurrency,
                databases.product_path(),
            )
            for variant in ("off", "on")
        ]
        for _ in range(max(1, round(SERVER_WARMUP_SECONDS / slice_seconds))):
            for server in servers:
                server.slice(slice_seconds)
        before = [server.snapshot() for server in servers]
        walls = [0.0] * len(servers)
        for cycle in range(max(1, round(seconds / slice_seconds))):
            for index in (0, 1) if (run + cycle) % 2 == 0 else (1, 0):
                walls[index] += servers[index].slice(slice_seconds)
        after = [server.snapshot() for server in servers]
    figures = {}
    for server, start, end, wall in zip(servers, before, after, walls, strict=True):
        requests = end["completed"] - start["completed"]
        if requests == 0:
            raise RuntimeError(f"{server.variant}: no request answered 200 under load")
        figures[server.variant] = {
            "requests": requests,
            "failed": end["failed"] - start["failed"],
            "wall": wall,
            "server_cpu": _cpu_spent(start["tree"], end["tree"]),
            "database_cpu": _cpu_spent(start["database"], end["database"]),
            "load_generator_cpu": end["generator"] - start["generator"],
            "workers": server.workers,
            "metric_rows": _count(server.database_url, "SELECT count(*) FROM retail_metric"),
        }
    return figures


def _stop(process: subprocess.Popen) -> None:
    """Stop gracefully, as an operator would (workers write what they buffered)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _count(database_url: str, query: str) -> int:
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return db.execute(query).fetchone()[0]
    import psycopg

    with psycopg.connect(database_url) as db:
        return db.execute(query).fetchone()[0]


# --- OTLP receiver -------------------------------------------------------------------------


def _discard_otlp(conn) -> None:
    """Run in a child process: accept OTLP/HTTP exports on a free port and discard them."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Discard(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Discard)
    conn.send(server.server_address[1])
    server.serve_forever()


class _OtlpReceiver:
    """The local OTLP/HTTP receiver the `otel` variant exports to, in its own process."""

    def __init__(self, stack: ExitStack) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        self._process = context.Process(target=_discard_otlp, args=(child,), daemon=True)
        self._process.start()
        stack.callback(self._process.terminate)
        if not parent.poll(60):
            raise RuntimeError("the OTLP receiver did not start")
        self.url = f"http://127.0.0.1:{parent.recv()}"

    def cpu(self) -> float:
        return _cpu_seconds(self._process.pid)


# --- databases ------------------------------------------------------------------------------


def _prepare_database(database_url: str, workdir: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "RETAIL_LOG_DIR": str(workdir)}
    manage = [sys.executable, str(BACKEND / "manage.py")]
    for command in (["migrate", "--noinput", "-v0"], ["seed_demo"]):
        subprocess.run(manage + command, env=env, check=True, stdout=subprocess.DEVNULL)


class _Databases:
    """Migrated, seeded databases, one per server started: SQLite copies or PG databases."""

    def __init__(self, stack: ExitStack, workdir: Path, postgres: str | None) -> None:
        self._stack, self._workdir, self._postgres = stack, workdir, postgres
        if postgres:
            self._base = stack.enter_context(throwaway_postgres(postgres))
        else:
            self._base = f"sqlite:///{workdir / 'base.sqlite3'}"
        _prepare_database(self._base, workdir)
        self._made = 0

    def fresh(self) -> str:
        """Return the URL of a new copy of the base database."""
        self._made += 1
        if self._postgres:
            name = self._base.rpartition("/")[2]
            return self._stack.enter_context(throwaway_postgres(self._postgres, template=name))
        copy = self._workdir / f"copy-{self._made}.sqlite3"
        with (
            sqlite3.connect(self._base.removeprefix("sqlite:///")) as source,
            sqlite3.connect(copy) as target,
        ):
            source.backup(target)
        return f"sqlite:///{copy}"

    def product_path(self) -> str:
        query = "SELECT min(id) FROM catalog_product"
        return f"/api/products/{_count(self._base, query)}/"


# --- figures -----------------------------------------------------------------------------


def _spread(values: list[float], digits: int = 3) -> dict:
    return {
        "min": round(min(values), digits),
        "median": round(statistics.median(values), digits),
        "max": round(max(values), digits),
    }


def _in_process_figures(series: list[dict[str, dict]], variants: tuple[str, ...]) -> dict:
    def rps(figures: dict) -> float:
        return figures["requests"] / figures["wall"]

    def cpu_us(figures: dict) -> float:
        return (figures["cpu"] + figures["database_cpu"]) / figures["requests"] * 1e6

    result: dict = {"variants": {}}
    for variant in variants:
        mine = [run[variant] for run in series]
        threads: dict[str, list[float]] = {}
        for figures in mine:
            for name, spent in figures["threads"].items():
                threads.setdefault(name, []).append(spent / figures["requests"] * 1e6)
        result["variants"][variant] = {
            "rps": _spread([rps(figures) for figures in mine], 1),
            "cpu_us_per_request": _spread([cpu_us(figures) for figures in mine], 1),
            "runs": [
                {
                    "rps": round(rps(figures), 1),
                    "cpu_us_per_request": round(cpu_us(figures), 1),
                    "thread_cpu_us_per_request": {
                        name: round(spent / figures["requests"] * 1e6, 1)
                        for name, spent in figures["threads"].items()
                        if spent > 0
                    },
                }
                for figures in mine
            ],
            "database_cpu_us_per_request": round(
                statistics.median(f["database_cpu"] / f["requests"] * 1e6 for f in mine), 1
            ),
            "thread_cpu_us_per_request": {
                name: round(statistics.median(values), 1) for name, values in threads.items()
            },
            "context_switches_per_request": round(
                statistics.median(f["context_switches"] / f["requests"] for f in mine), 2
            ),
            "gc_collections_per_1000_requests": [
                round(statistics.median(f["gc"][gen] / f["loop_requests"] * 1000 for f in mine), 2)
                for gen in range(3)
            ],
            "drain_ms": _spread([f["drain_wall"] * 1000 for f in mine], 1),
            "receiver_cpu_us_per_request": round(
                statistics.median(f["receiver_cpu"] / f["requests"] * 1e6 for f in mine), 1
            ),
        }
    for variant in variants[1:]:
        per_run = [rps(run[variant]) / rps(run["off"]) for run in series]
        per_cycle = [
            mine / off
            for run in series
            for mine, off in zip(run[variant]["cycle_rps"], run["off"]["cycle_rps"], strict=True)
        ]
        cpu_ratio = [cpu_us(run["off"]) / cpu_us(run[variant]) for run in series]
        result[f"{variant}_off"] = {
            "runs": [round(ratio, 3) for ratio in per_run],
            "run_spread": _spread(per_run),
            "cycle_spread": _spread(per_cycle),
            "cpu_ratio": _spread(cpu_ratio),
        }
    return result


def _server_figures(pairs: list[dict[str, dict]]) -> dict:
    def rps(figures: dict) -> float:
        return figures["requests"] / figures["wall"]

    def server_us(figures: dict) -> float:
        return (figures["server_cpu"] + figures["database_cpu"]) / figures["requests"] * 1e6

    result: dict = {"variants": {}}
    for variant in pairs[0]:
        mine = [pair[variant] for pair in pairs]
        result["variants"][variant] = {
            "rps": _spread([rps(figures) for figures in mine], 1),
            "server_cpu_us_per_request": _spread([server_us(figures) for figures in mine], 1),
            "database_cpu_us_per_request": round(
                statistics.median(f["database_cpu"] / f["requests"] * 1e6 for f in mine), 1
            ),
            "load_generator_cpu_us_per_request": round(
                statistics.median(f["load_generator_cpu"] / f["requests"] * 1e6 for f in mine), 1
            ),
            "failed_requests": sum(f["failed"] for f in mine),
            "metric_rows_after_last_run": mine[-1]["metric_rows"],
            "workers": mine[0]["workers"],
        }
    per_run = [rps(pair["on"]) / rps(pair["off"]) for pair in pairs]
    result["on_off"] = {
        "runs": [round(ratio, 3) for ratio in per_run],
        "run_spread": _spread(per_run),
        "cpu_ratio": _spread([server_us(pair["off"]) / server_us(pair["on"]) for pair in pairs]),
    }
    return result


def measure(
    *,
    runs: int = 1,
    seconds: float = 20.0,
    slice_seconds: float = 0.5,
    processes: int = 3,
    server_runs: int = 1,
    server_seconds: float = 20.0,
    concurrency: int = 4,
    naive: bool = False,
    thread_writer: bool = False,
    postgres: str | None = None,
) -> dict:
    """Measure both ways, variants alternating; return the figures."""
    variants = (
        "off",
        "on",
        "otel",
        *(("thread",) if thread_writer else ()),
        *(("naive",) if naive else ()),
    )
    workdir = Path(tempfile.mkdtemp(prefix="retail-bench-middleware-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        databases = _Databases(stack, workdir, postgres)
        otlp = _OtlpReceiver(stack)
        urls = {variant: [databases.fresh() for _ in range(processes)] for variant in variants}
        series = [
            _in_process_run(variants, urls, workdir, otlp, run, seconds, slice_seconds)
            for run in range(runs)
        ]
        pairs = [
            _gunicorn_run(databases, workdir, otlp, run, server_seconds, slice_seconds, concurrency)
            for run in range(server_runs)
        ]
    in_process = _in_process_figures(series, variants)
    server = _server_figures(pairs) if pairs else None
    p1 = in_process["on_off"]["run_spread"]
    return {
        "endpoint": "GET /api/products/<id>/",
        "database": "postgresql" if postgres else "sqlite",
        "in_process": {
            "runs": runs,
            "seconds": seconds,
            "slice_seconds": slice_seconds,
            "processes": processes,
            **in_process,
        },
        "gunicorn": server
        and {
            "runs": server_runs,
            "seconds": server_seconds,
            "concurrency": concurrency,
            "command": " ".join(_serve_command()),
            **server,
        },
        "target": {"median": TARGET_MEDIAN, "worst": TARGET_WORST},
        "p1_pass": p1["median"] >= TARGET_MEDIAN and p1["min"] >= TARGET_WORST,
    }


def _range(spread: dict, digits: int = 0) -> str:
    return f"{spread['min']:.{digits}f}-{spread['median']:.{digits}f}-{spread['max']:.{digits}f}"


def _table(figures: dict) -> str:
    in_process = figures["in_process"]
    lines = [
        f"{figures['endpoint']} on {figures['database']}: in-process, {in_process['runs']} run(s)"
        f" of {in_process['seconds']:g} s of continuous load per variant in"
        f" {in_process['processes']} processes each, slices of {in_process['slice_seconds']:g} s",
        f"{'variant':<38}{'req/s min-med-max':>20}{'CPU µs/req':>12}{'vs off (runs)':>20}"
        f"{'CPU ratio':>11}   CPU µs/req by thread",
    ]
    for variant, own in in_process["variants"].items():
        ratio = in_process.get(f"{variant}_off")
        shown = _range(ratio["run_spread"], 3) if ratio else "1"
        cpu_ratio = f"{ratio['cpu_ratio']['median']:.3f}" if ratio else "1"
        threads = " ".join(
            f"{name}={spent:.0f}"
            for name, spent in own["thread_cpu_us_per_request"].items()
            if spent >= 0.5
        )
        if own["database_cpu_us_per_request"]:
            threads += f" postgres={own['database_cpu_us_per_request']:.0f}"
        threads += f"; switches/req {own['context_switches_per_request']:.2f}"
        lines.append(
            f"{LABELS[variant]:<38}{_range(own['rps']):>20}"
            f"{own['cpu_us_per_request']['median']:>12.0f}{shown:>20}{cpu_ratio:>11}   {threads}"
        )
    p1 = in_process["on_off"]
    lines.append(
        f"P1 per run: {' '.join(f'{ratio:.3f}' for ratio in p1['runs'])}; per slice "
        f"{_range(p1['cycle_spread'], 3)}"
    )
    server = figures["gunicorn"]
    if server:
        lines += [
            "",
            f"gunicorn as `make serve` ({server['variants']['off']['workers']} workers), "
            f"closed loop at concurrency {server['concurrency']}, {server['runs']} run(s) "
            f"of {server['seconds']:g} s per variant",
            f"{'variant':<38}{'req/s min-med-max':>20}{'server CPU µs/req':>19}"
            f"{'load gen. CPU µs/req':>22}{'failed':>8}",
        ]
        for variant, own in server["variants"].items():
            lines.append(
                f"{LABELS[variant]:<38}{_range(own['rps']):>20}"
                f"{own['server_cpu_us_per_request']['median']:>19.0f}"
                f"{own['load_generator_cpu_us_per_request']:>22.0f}{own['failed_requests']:>8}"
            )
        lines.append(
            f"P1 per run: {' '.join(f'{ratio:.3f}' for ratio in server['on_off']['runs'])}; "
            f"server CPU ratio {_range(server['on_off']['cpu_ratio'], 3)}"
        )
    verdict = "PASS" if figures["p1_pass"] else "FAIL"
    lines.append(
        f"target (in-process P1 over runs): median >= {TARGET_MEDIAN:.2f}, worst >= "
        f"{TARGET_WORST:.2f}: {verdict} ({_range(p1['run_spread'], 3)})"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="in-process runs")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="timed seconds per variant and run"
    )
    parser.add_argument(
        "--slice", type=float, default=0.5, help="seconds a process runs before the next"
    )
    parser.add_argument(
        "--processes", type=int, default=3, help="processes per variant and run, pooled"
    )
    parser.add_argument("--server-runs", type=int, default=1, help="gunicorn on/off pairs")
    parser.add_argument("--server-seconds", type=float, default=20.0, help="per gunicorn run")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--naive", action="store_true", help="add the ADR's naive design")
    parser.add_argument(
        "--thread-writer",
        action="store_true",
        help="add `on` with the rows inserted and the lines written by the process's own threads",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--postgres-url",
        metavar="SERVER_URL",
        help="run on throwaway databases of this PostgreSQL server instead of SQLite",
    )
    args = parser.parse_args()
    figures = measure(
        runs=args.runs,
        seconds=args.seconds,
        slice_seconds=args.slice,
        processes=args.processes,
        server_runs=args.server_runs,
        server_seconds=args.server_seconds,
        concurrency=args.concurrency,
        naive=args.naive,
        thread_writer=args.thread_writer,
        postgres=args.postgres_url,
    )
    print(json.dumps(figures) if args.json else _table(figures))


if __name__ == "__main__":
    main()
