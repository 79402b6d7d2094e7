"""Benchmark `retailctl trace <id>` against `grep -F <id>` over ~1 GB of rotated JSON logs.

Generates realistic log lines (several million, rotated into four files) once under
var/bench/trace-logs/ (reused while the size matches), warms the page cache, then times
both tools over the same files: median of 3 runs each. Target: trace <= 2x grep.
Usage: python bench/trace.py [--size-mb 1024] [--json]
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
FILES = ["application.log.3", "application.log.2", "application.log.1", "application.log"]
TARGET_ID = "bench-target-7f3a9c"
_PATHS = ["/api/products/", "/api/products/12/", "/api/orders/", "/api/orders/881/", "/healthz"]


def _line(rng: random.Random, second: float, request_id: str, event: str) -> str:
    path = rng.choice(_PATHS)
    record = {
        "timestamp": f"2026-11-2{int(second // 86400) % 8}T{int(second % 86400 // 3600):02d}:"
        f"{int(second % 3600 // 60):02d}:{second % 60:06.3f}+00:00",
        "level": "INFO",
        "logger": "retail.http",
        "message": event,
        "request_id": request_id,
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
    marker = LOG_DIR / f".size-{size_mb}"
    if marker.exists():
        return
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    LOG_DIR.mkdir(parents=True)
    rng = random.Random(7)
    per_file = size_mb * 1024 * 1024 // len(FILES)
    second = 0.0
    for index, name in enumerate(FILES):
        written = 0
        with open(LOG_DIR / name, "w") as stream:
            batch = []
            while written < per_file:
                request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                for event in ("http.request", "http.response"):
                    line = _line(rng, second, request_id, event)
                    batch.append(line)
                    written += len(line)
                second += 0.01
                if len(batch) >= 20000:
                    stream.write("".join(batch))
                    batch.clear()
            # The traced request: two records in each file, one of them out of order.
            batch.append(_line(rng, second - 5 * (index + 1), TARGET_ID, "http.request"))
            batch.append(_line(rng, second, TARGET_ID, "http.response"))
            stream.write("".join(batch))
    marker.touch()


def _timed(command: list[str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, check=False)
    return time.perf_counter() - start, completed.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    generate(args.size_mb)
    paths = [str(LOG_DIR / name) for name in FILES]
    total = sum(Path(p).stat().st_size for p in paths)
    lines = sum(1 for _ in open(paths[-1], "rb")) * len(paths)
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
    print(
        f"{'ratio trace/grep':<22}{figures['ratio']:>12.2f}     target <= 2.00: "
        f"{'met' if figures['target_met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
