"""Real server processes for load and fault tests: gunicorn and the fake gateway.

Each starts on a port the OS picks (bind port 0, read the bound port back from the
process), is polled on its health URL until a deadline, and is always stopped:
SIGTERM, wait, SIGKILL if it does not exit in time.
"""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BACKEND_DIR = PROJECT_ROOT / "backend"
MANAGE = [sys.executable, str(BACKEND_DIR / "manage.py")]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
GUNICORN_CONFIG = BACKEND_DIR / "config" / "gunicorn.py"


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.05):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def backend_env(
    *, database_url: str, log_dir: Path, redis_url: str | None = None, **settings: str
) -> dict[str, str]:
    """Build the environment of a backend process: its own database, logs and key space."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RETAIL_", "DJANGO_")) and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        DATABASE_URL=database_url,
        RETAIL_LOG_DIR=str(log_dir),
        RETAIL_SHARED_STATE_PREFIX=f"retail-load-{uuid.uuid4().hex[:12]}",
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(settings)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """Run one management command with `env`; return its stdout or raise with its stderr."""
    return run_python(str(BACKEND_DIR / "manage.py"), *args, env=env, timeout=timeout)


def run_python(
    *args: str, env: dict[str, str], cwd: Path = PROJECT_ROOT, timeout: float = 180
) -> str:
    """Run `python ARGS` with `env`; return its stdout or raise with the end of its stderr."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def _shared_state_delete(env: dict[str, str]) -> None:
    """Delete the Redis keys of one server's namespace (breaker state has no expiry)."""
    if not env.get("REDIS_URL"):
        return
    import redis

    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        for key in client.scan_iter(f"*{env['RETAIL_SHARED_STATE_PREFIX']}*"):
            client.delete(key)
    finally:
        client.close()


def _stop(process: subprocess.Popen, *, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class GunicornServer:
    """gunicorn serving `config.wsgi:application` on a free loopback port.

    As `make serve` runs it (backend/config/gunicorn.py: threaded workers) unless told
    otherwise: `threads` and `worker_class` override the config, as their options do.
    """

    def __init__(
        self,
        env: dict[str, str],
        *,
        workers: int = 4,
        threads: int | None = None,
        worker_class: str | None = None,
        migrate=True,
    ):
        self.env = env
        self.workers = workers
        self.threads = threads
        self.worker_class = worker_class
        self.migrate = migrate
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen | None = None
        self._stderr_path = Path(env["RETAIL_LOG_DIR"]) / f"gunicorn-{uuid.uuid4().hex[:6]}.err"

    def __enter__(self) -> "GunicornServer":
        if self.migrate:
            manage(self.env, "migrate", "--noinput")
        command = [GUNICORN, "--chdir", str(BACKEND_DIR), "--bind", f"127.0.0.1:{self.port}"]
        command += ["--workers", str(self.workers)]
        if self.threads is not None:
            command += ["--threads", str(self.threads)]
        if self.worker_class is not None:
            command += ["--worker-class", self.worker_class]
        command += ["--graceful-timeout", "20", "--timeout", "60"]
        if GUNICORN_CONFIG.exists():
            command += ["-c", str(GUNICORN_CONFIG)]
        command.append("config.wsgi:application")
        self._stderr = self._stderr_path.open("w")
        self.process = subprocess.Popen(
            command, env=self.env, stdout=subprocess.DEVNULL, stderr=self._stderr
        )
        try:
            self.port = wait_for(self._bound_port, timeout=30, what="gunicorn to bind")
            self.url = f"http://127.0.0.1:{self.port}"
            wait_for(self._healthy, timeout=30, what="gunicorn /healthz")
            wait_for(
                lambda: len(self.worker_pids()) == self.workers,
                timeout=30,
                what="every gunicorn worker",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _bound_port(self) -> int | None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{self.stderr()[-3000:]}")
        match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.stderr())
        return int(match.group(1)) if match else None

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stderr(self) -> str:
        return self._stderr_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """Return the pids of the master's live worker processes (Linux /proc)."""
        if self.process is None:
            return set()
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.add(int(stat.parent.name))
        return pids

    def stop(self) -> None:
        """Stop gracefully (workers flush their buffered metrics and logs), then reap."""
        if self.process is not None:
            _stop(self.process)
            self.process = None
            _shared_state_delete(self.env)
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()
            self._stderr = None

    def restart(self) -> None:
        """Stop, then start again on the same port (as a deploy restarts the service)."""
        self.stop()
        self.migrate = False
        self._stderr_path = self._stderr_path.with_name(f"gunicorn-{uuid.uuid4().hex[:6]}.err")
        self.__enter__()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class FakeGateway:
    """`manage.py run_fake_gateway --port 0` in its own process."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.url = ""
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "FakeGateway":
        self.process = subprocess.Popen(
            [*MANAGE, "run_fake_gateway", "--port", "0"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            # The command prints its bound URL first; readline blocks, so bound by a timer.
            line = self._first_line(timeout=30)
            match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if not match:
                raise RuntimeError(f"fake gateway did not start: {line!r}")
            self.url = match.group(0)
            wait_for(self._healthy, timeout=15, what="fake gateway /healthz")
        except BaseException:
            self.stop()
            raise
        return self

    def _first_line(self, *, timeout: float) -> str:
        import threading

        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if not lines:
            raise TimeoutError("fake gateway printed nothing")
        return lines[0]

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def control(self, **changes) -> dict:
        """Change the gateway's mode, latency or failure rate."""
        return httpx.post(f"{self.url}/_control", json=changes, timeout=5).raise_for_status().json()

    def state(self) -> dict:
        """Return the gateway's mode and counters."""
        return httpx.get(f"{self.url}/_control", timeout=5).raise_for_status().json()

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, timeout=10)
            if self.process.stdout is not None:
                self.process.stdout.close()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def staff_token(env: dict[str, str], username: str = "ops") -> str:
    """Create a staff user (a superuser) with `manage.py`; return its DRF token's key."""
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": f"{username}-pass-9x"},
        *("createsuperuser", "--noinput", "--username", username),
        *("--email", f"{username}@example.com"),
    )
    return re.search(r"token (\w+)", manage(env, "drf_create_token", username)).group(1)
