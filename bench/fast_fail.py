"""A2 fast-fail: latency of a checkout turned away by an OPEN breaker, end to end over HTTP.

gunicorn (4 workers, SQLite) in front of the fake gateway: the gateway goes down, the
breaker opens after FAIL_MAX failures (reset timeout 10 minutes, so it stays OPEN),
then checkouts are sent one at a time and then 8 at a time. Reports client-side p50/p99
over HTTP and the server-side p50/p99 the backend recorded (`payment_fast_fail` rows).
Target: p99 < 10 ms one at a time, ten times better than the ADR's 100 ms.
Uses REDIS_URL (shared breaker, Redis throttle) when it is set.
Usage: python bench/fast_fail.py [--requests 1000] [--json]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.load import (  # noqa: E402
    latency_summary,
    order_body,
    percentile,
    post_orders,
    product_id,
    query,
)
from tests.support.servers import FakeGateway, GunicornServer, backend_env, manage  # noqa: E402

FAIL_MAX = 5
TARGET_P99_MS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    redis_url = os.environ.get("REDIS_URL")

    with tempfile.TemporaryDirectory(prefix="bench-fastfail-") as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'fastfail.sqlite3'}"
        log_dir = Path(tmp)
        with FakeGateway(backend_env(database_url=database_url, log_dir=log_dir)) as gateway:
            env = backend_env(
                database_url=database_url,
                log_dir=log_dir,
                redis_url=redis_url,
                RETAIL_PAYMENT_GATEWAY_URL=gateway.url,
                RETAIL_BREAKER_FAIL_MAX=str(FAIL_MAX),
                RETAIL_BREAKER_RESET_SECONDS="600",
                RETAIL_CHECKOUT_RATE="1000000/m",
            )
            with GunicornServer(env, workers=4) as server:
                manage(env, "seed_demo")
                product = product_id(database_url, "TEE-001")
                gateway.control(mode="down")
                for _ in range(FAIL_MAX):
                    post_orders(server.url, [order_body(product)], concurrency=1)
                body = [order_body(product)]
                post_orders(server.url, body * 50, concurrency=1)  # warm-up
                sequential = post_orders(server.url, body * args.requests, concurrency=1)
                parallel = post_orders(server.url, body * args.requests, concurrency=8)
            # Stopped gracefully: every worker has written its metric rows.
        server_ms = [
            row[0]
            for row in query(
                database_url,
                "SELECT value FROM retail_metric WHERE metric_type = 'payment_fast_fail'",
            )
        ]

    # A fast-fail names the open circuit; a gateway failure would name its failed order.
    rejected = all(
        a.status == 503 and a.body["detail"].get("circuit") == "open" for a in sequential + parallel
    )
    results = {
        "requests": args.requests,
        "redis": bool(redis_url),
        "all_fast_failed": rejected,
        "http_sequential": latency_summary(sequential),
        "http_concurrency_8": latency_summary(parallel),
        "server_side": {
            "samples": len(server_ms),
            "p50_ms": round(statistics.median(server_ms), 3),
            "p99_ms": round(percentile(server_ms, 0.99), 3),
        },
        "target_p99_ms": TARGET_P99_MS,
    }
    results["meets_target"] = results["http_sequential"]["p99_ms"] < TARGET_P99_MS
    if args.json:
        print(json.dumps(results))
    else:
        print(
            f"A2 fast-fail: {args.requests} checkouts per run against an OPEN breaker, "
            f"gunicorn 4 workers, Redis {'on' if redis_url else 'off'}"
        )
        print(f"{'measured':<28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, key in (
            ("HTTP, one at a time", "http_sequential"),
            ("HTTP, 8 at a time", "http_concurrency_8"),
        ):
            r = results[key]
            print(f"{name:<28} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
        s = results["server_side"]
        print(f"{'server-side (recorded)':<28} {s['p50_ms']:>8} {s['p99_ms']:>8} {'':>8}")
        print(
            f"all turned away by the open breaker: {rejected}; "
            f"target p99 < {TARGET_P99_MS} ms one at a time: "
            f"{'met' if results['meets_target'] else 'NOT met'}"
        )
    return 0 if rejected else 1


if __name__ == "__main__":
    sys.exit(main())
