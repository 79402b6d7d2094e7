"""Benchmark `retailctl trace <id>` against `grep -F <id>` over ~1 GB of rotated JSON logs.

Generates realistic log lines (several million) once under var/bench/trace-logs/ (reused
while the size matches), in two log families as the backend and the gateway write them:
application.log.2, .1 and the live file (three quarters of the bytes) and gateway.log.1
and the live file (the rest). Warms the page cache, then times both tools over the same
files, alternating, every run shown. Target (P2): trace's median <= 2x grep's.
Usage: python bench/trace.py [--size-mb 1024] [--runs 5] [--json]
"""

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = PROJECT_ROOT / "var" / "bench" / "trace-logs"
# (file, share of the bytes, service, logger): the backend's family, then the gateway's.
FILES = [
    ("application.log.2", 0.25, "backend", "retail.http"),
    ("application.log.1", 0.25, "backend", "retail.http"),
    ("application.log", 0.25, "backend", "retail.http"),
    ("gateway.log.1", 0.125, "gateway", "payments.fake_gateway"),
    ("gateway.log", 0.125, "gateway", "payments.fake_gateway"),
]
TARGET_ID = "bench-target-7f3a9c"
_PATHS = ["/api/products/", "/api/products/12/", "/api/orders/", "/api/orders/881/", "/healthz"]


def _line(
    rng: random.Random, second: float, request_id: str, event: str, service: str, logger: str
) -> str:
    path = rng.choice(_PATHS)
    record = {
        "timestamp": f"2026-11-2{int(second // 86400) % 8}T{int(second % 86400 // 3600):02d}:"
        f"{int(second % 3600 // 60):02d}:{second % 60:06.3f}+00:00",
        "level": "INFO",
        "logger": logger,
        "message": event,
        "service": service,
        "request_id": request_id,
        "trace_id": f"{rng.getrandbits(128):032x}",
        "event": event,
        "method": "POST" if "orders" in path else "GET",
        "path": path,
        "route": path,
        "status_code": rng.choice([200, 200, 200, 201, 404, 402]),
        "duration_ms": round(rng.lognormvariate(2.5, 0.8), 3),
        "user_id": None,
        "ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
    }
    return json.dumps(record, separators=(",", ":")) + "\n"


def generate(size_mb: int) -> None:
    marker = LOG_DIR / f".two-families-size-{size_mb}"
    if marker.exists():
        return
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    LOG_DIR.mkdir(parents=True)
    rng = random.Random(7)
    for index, (name, share, service, logger) in enumerate(FILES):
        budget = int(size_mb * 1024 * 1024 * share)
        second = 40_000.0 * (index % 3)
        written = 0
        with open(LOG_DIR / name, "w") as stream:
            batch = []
            while written < budget:
                request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                for event in ("http.request", "http.response"):
                    line = _line(rng, second, request_id, event, service, logger)
                    batch.append(line)
                    written += len(line)
                second += 0.01
                if len(batch) >= 20000:
                    stream.write("".join(batch))
                    batch.clear()
            # The traced request: two records in each file, one of them out of order.
            for moment, event in (
                (second - 5 * (index + 1), "http.request"),
                (second, "http.response"),
            ):
                batch.append(_line(rng, moment, TARGET_ID, event, service, logger))
            stream.write("".join(batch))
    marker.touch()


def _timed(command: list[str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, check=False)
    return time.perf_counter() - start, completed.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    generate(args.size_mb)
    paths = [str(LOG_DIR / name) for name, *_ in FILES]
    total = sum(Path(p).stat().st_size for p in paths)
    lines = total // len(_line(random.Random(1), 0.0, "x" * 36, "http.response", "b", "l"))
    grep = ["grep", "-F", "-h", TARGET_ID, *paths]
    trace = [
        sys.executable,
        "-m",
        "retailctl",
        "trace",
        TARGET_ID,
        "--json",
        "--log-dir",
        str(LOG_DIR),
    ]
    _timed(grep)  # warm the page cache
    grep_times, trace_times = [], []
    for _ in range(args.runs):
        seconds, grep_out = _timed(grep)
        grep_times.append(seconds)
        seconds, trace_out = _timed(trace)
        trace_times.append(seconds)
    found = len(trace_out.splitlines())
    figures = {
        "bytes": total,
        "files": len(paths),
        "approx_lines": lines,
        "grep_matches": len(grep_out.splitlines()),
        "trace_records": found,
        "grep_median_s": round(statistics.median(grep_times), 3),
        "trace_median_s": round(statistics.median(trace_times), 3),
        "grep_runs_s": [round(t, 3) for t in grep_times],
        "trace_runs_s": [round(t, 3) for t in trace_times],
    }
    figures["ratio"] = round(figures["trace_median_s"] / figures["grep_median_s"], 2)
    figures["target_met"] = figures["ratio"] <= 2.0 and found == 2 * len(paths)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{'log size':<22}{total / 1024**2:>12,.0f} MB in {len(paths)} files (~{lines:,} lines)")
    grep_s, matches = figures["grep_median_s"], figures["grep_matches"]
    print(f"{'grep -F (median)':<22}{grep_s:>12.3f} s   ({matches} lines)")
    print(f"{'retailctl trace':<22}{figures['trace_median_s']:>12.3f} s   ({found} records)")
    print(f"{'  grep runs':<22}{', '.join(f'{t:.3f}' for t in grep_times)} s")
    print(f"{'  trace runs':<22}{', '.join(f'{t:.3f}' for t in trace_times)} s")
    print(
        f"{'ratio trace/grep':<22}{figures['ratio']:>12.2f}     target <= 2.00: "
        f"{'met' if figures['target_met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
