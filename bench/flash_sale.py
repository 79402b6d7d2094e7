"""A1 flash sale under load: gunicorn (4 workers) on SQLite and PostgreSQL.

Concurrent buyers POST single-unit orders for FLASH-001 until far more than its stock
has been asked for. Reports orders/s (all answers, and units sold), p50/p99 latency of
every answer and of the sales, and the oversell count (must be 0): units sold beyond
the stock, products with negative stock, and products whose stock differs from the
sum of their ledger movements.

PostgreSQL runs when RETAIL_TEST_POSTGRES_URL (or --postgres-url) names a server; each
run gets a throwaway database. Usage:
  python bench/flash_sale.py [--stock 200] [--buyers 800] [--concurrency 32] [--full] [--json]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.databases import throwaway_postgres  # noqa: E402
from tests.support.load import (  # noqa: E402
    latency_summary,
    nothing_lost,
    order_body,
    post_orders,
    product_id,
    stock,
)
from tests.support.servers import GunicornServer, backend_env, manage  # noqa: E402


def run(database_url: str, *, stock_units: int, buyers: int, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-flash-") as tmp:
        env = backend_env(
            database_url=database_url,
            log_dir=Path(tmp),
            redis_url=os.environ.get("REDIS_URL"),
            RETAIL_CHECKOUT_RATE="1000000/m",
        )
        with GunicornServer(env, workers=4) as server:
            manage(env, "seed_demo", "--flash-stock", str(stock_units))
            flash = product_id(database_url, "FLASH-001")
            post_orders(server.url, [order_body(flash, 1, "tok_decline")] * 20)  # warm-up
            started = time.perf_counter()
            answers = post_orders(server.url, [order_body(flash)] * buyers, concurrency=concurrency)
            elapsed = time.perf_counter() - started
        sold = sum(1 for a in answers if a.status == 201)
        broken = nothing_lost(database_url)
        left = stock(database_url, "FLASH-001")
        sales = [a for a in answers if a.status == 201]
        return {
            "stock": stock_units,
            "buyers": buyers,
            "concurrency": concurrency,
            "seconds": round(elapsed, 3),
            "requests_per_s": round(buyers / elapsed, 1),
            "sold_per_s": round(sold / elapsed, 1),
            "sold": sold,
            "rejected_409": sum(1 for a in answers if a.status == 409),
            "errors_5xx": sum(1 for a in answers if a.status >= 500),
            "stock_left": left,
            "all": latency_summary(answers),
            "sales": latency_summary(sales) if sales else None,
            "oversell": max(0, sold - stock_units) + len(broken.get("ledger_mismatch", [])),
            "invariants_broken": broken,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock", type=int, default=200)
    parser.add_argument("--buyers", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--full", action="store_true", help="stock 1000, 4000 buyers")
    parser.add_argument("--postgres-url", default=os.environ.get("RETAIL_TEST_POSTGRES_URL"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.full:
        args.stock, args.buyers = 1000, 4000
    sizes = {"stock_units": args.stock, "buyers": args.buyers, "concurrency": args.concurrency}

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-flash-db-") as tmp:
        results["sqlite"] = run(f"sqlite:///{Path(tmp) / 'flash.sqlite3'}", **sizes)
    if args.postgres_url:
        with throwaway_postgres(args.postgres_url) as url:
            results["postgresql"] = run(url, **sizes)
    else:
        results["postgresql"] = None

    if args.json:
        print(json.dumps(results))
    else:
        print(
            f"A1 flash sale: {args.buyers} buyers, {args.stock} in stock, "
            f"{args.concurrency} concurrent, gunicorn 4 workers"
        )
        print(
            f"{'database':<11} {'req/s':>7} {'sold/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'sale p99':>8} {'sold':>5} {'409':>5} {'5xx':>4} {'oversell':>8}"
        )
        for name, r in results.items():
            if r is None:
                print(f"{name:<11} skipped: set RETAIL_TEST_POSTGRES_URL")
                continue
            sale_p99 = r["sales"]["p99_ms"] if r["sales"] else float("nan")
            print(
                f"{name:<11} {r['requests_per_s']:>7} {r['sold_per_s']:>7} "
                f"{r['all']['p50_ms']:>7} {r['all']['p99_ms']:>7} {sale_p99:>8} "
                f"{r['sold']:>5} {r['rejected_409']:>5} {r['errors_5xx']:>4} {r['oversell']:>8}"
            )
    ran = [r for r in results.values() if r is not None]
    return 0 if all(r["oversell"] == 0 and r["errors_5xx"] == 0 for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
