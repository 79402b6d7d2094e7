"""Benchmark `retailctl tail -n 20` on a log whose last line never ends, and on a plain log.

A line without newline is what a crashed writer or a foreign file can leave; the old
reader copied everything read so far once per 256 KB block (a 200 MB line: 97 s, 650 MB).
Each case runs `retailctl tail -n 20 --json` as a fresh process: wall time (median, min,
max of the runs) and the process's peak RSS. Files are generated once under var/bench/.
Usage: python bench/tail.py [--line-mb 200] [--log-mb 200] [--runs 3] [--json]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = PROJECT_ROOT / "var" / "bench" / "tail"
_RECORD = (
    '{{"timestamp":"2026-11-28T10:{minute:02d}:{second:06.3f}+00:00","level":"INFO",'
    '"logger":"retail.http","message":"http.response","request_id":"bench-{n}",'
    '"event":"http.response","method":"GET","path":"/api/products/","status_code":200,'
    '"duration_ms":3.2}}\n'
)


def _records(count: int) -> str:
    return "".join(
        _RECORD.format(minute=n // 60000 % 60, second=n / 1000 % 60, n=n) for n in range(count)
    )


def _generate(directory: Path, *, line_mb: int = 0, log_mb: int = 0) -> Path:
    """Write application.log: records, then `line_mb` MB of one line without end."""
    marker = directory / f".generated-{line_mb}-{log_mb}"
    if marker.exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.iterdir():
        stale.unlink()
    with open(directory / "application.log", "w") as stream:
        per_block = 20_000
        written = n = 0
        target = max(log_mb * 1024 * 1024, 1)
        while written < target:
            block = _records(per_block)
            stream.write(block)
            written += len(block)
            n += per_block
            if not log_mb:
                break
        chunk = "x" * (1024 * 1024)
        for _ in range(line_mb):
            stream.write(chunk)
    marker.touch()
    return directory


def _run(log_dir: Path) -> tuple[float, float, int]:
    """Return wall seconds, peak RSS in MB and the records printed by one tail run."""
    command = [sys.executable, "-m", "retailctl", "tail", "-n", "20", "--json"]
    start = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--log-dir", str(log_dir)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"retailctl tail exited {process.returncode}")
    return seconds, usage.ru_maxrss / 1024, len(out.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--line-mb", type=int, default=200)
    parser.add_argument("--log-mb", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cases = {
        f"{args.line_mb} MB line without newline": _generate(
            BENCH_DIR / "long-line", line_mb=args.line_mb
        ),
        f"{args.log_mb} MB of records": _generate(BENCH_DIR / "records", log_mb=args.log_mb),
    }
    figures = {}
    for name, directory in cases.items():
        runs = [_run(directory) for _ in range(args.runs)]
        seconds = [run[0] for run in runs]
        figures[name] = {
            "median_s": round(statistics.median(seconds), 3),
            "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3),
            "peak_rss_mb": round(max(run[1] for run in runs), 1),
            "records_printed": runs[-1][2],
        }
    if args.json:
        print(json.dumps({"runs": args.runs, "cases": figures}))
        return
    print(f"retailctl tail -n 20, {args.runs} runs each (fresh process per run)")
    print(f"{'case':<34}{'median s':>10}{'min s':>8}{'max s':>8}{'peak RSS MB':>13}{'records':>9}")
    for name, row in figures.items():
        print(
            f"{name:<34}{row['median_s']:>10.3f}{row['min_s']:>8.3f}{row['max_s']:>8.3f}"
            f"{row['peak_rss_mb']:>13.1f}{row['records_printed']:>9}"
        )


if __name__ == "__main__":
    main()
