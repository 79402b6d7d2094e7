"""A1 flash sale under load: gunicorn (4 workers) on SQLite and PostgreSQL.

Concurrent buyers POST single-unit orders for FLASH-001 until far more than its stock
has been asked for. Reports orders/s (all answers, and units sold), p50/p99 latency of
every answer and of the sales, and the oversell count (must be 0): units sold beyond
the stock, products with negative stock, and products whose stock differs from the
sum of their ledger movements.

PostgreSQL runs when RETAIL_TEST_POSTGRES_URL (or --postgres-url) names a server; each
run gets a throwaway database. Usage:
  python bench/flash_sale.py [--stock 200] [--buyers 800] [--concurrency 32] [--full] [--json]

With `--dashboards N` it measures the live dashboard's cost instead (on SQLite): the same
buyers against make serve's threaded workers with N dashboards streaming beside them (any
that a full worker refuses polls, as the page does) and without, and against plain sync
workers for reference, in alternating rounds of one run (`--rounds`, the order rotating
each round), each round on a freshly reset stock:
  python bench/flash_sale.py --dashboards 20 [--rounds 5] [--json]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.databases import throwaway_postgres  # noqa: E402
from tests.support.live import Dashboards, staff_user  # noqa: E402
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


# The variants of the dashboard mode: (name, gunicorn worker class or None for make
# serve's, dashboards open).
_SYNC = "sync"


def _variants(dashboards: int) -> list[tuple[str, str | None, int]]:
    return [
        ("threaded, no dashboard", None, 0),
        (f"threaded, {dashboards} dashboards", None, dashboards),
        ("sync workers, no dashboard", _SYNC, 0),
    ]


def _round(server, env, *, stock_units, buyers, concurrency, dashboards) -> dict:
    """Reset the flash stock, then run the buyers with `dashboards` streams open."""
    manage(env, "seed_demo", "--flash-stock", str(stock_units))
    flash = product_id(env["DATABASE_URL"], "FLASH-001")
    viewers = Dashboards(server.url, dashboards) if dashboards else nullcontext()
    with viewers as opened:
        started = time.perf_counter()
        answers = post_orders(server.url, [order_body(flash)] * buyers, concurrency=concurrency)
        elapsed = time.perf_counter() - started
        streaming = opened.streaming() if dashboards else 0
        events = sum(v.events for v in opened.viewers) if dashboards else 0
        polls = sum(v.polls for v in opened.viewers) if dashboards else 0
    sold = sum(1 for a in answers if a.status == 201)
    return {
        "requests_per_s": round(buyers / elapsed, 1),
        "p99_ms": latency_summary(answers)["p99_ms"],
        "sold": sold,
        "errors_5xx": sum(1 for a in answers if a.status >= 500),
        "oversell": max(0, sold - stock_units),
        "streaming": streaming,
        "events": events,
        "polls": polls,
    }


def _spread(values: list[float]) -> dict:
    return {
        "min": min(values),
        "median": round(statistics.median(values), 2),
        "max": max(values),
    }


def run_dashboards(*, dashboards: int, rounds: int, stock_units, buyers, concurrency) -> dict:
    """Alternate the variants round by round on three idle-waiting servers of one run."""
    variants = _variants(dashboards)
    per_variant: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp, ExitStack() as stack:
        servers = {}
        for index, (name, worker_class, _) in enumerate(variants):
            root = Path(tmp) / str(index)
            root.mkdir()
            env = backend_env(
                database_url=f"sqlite:///{root / 'flash.sqlite3'}",
                log_dir=root,
                redis_url=os.environ.get("REDIS_URL"),
                RETAIL_CHECKOUT_RATE="1000000/m",
                RETAIL_LOG_STDOUT="off",
            )
            manage(env, "migrate", "--noinput")
            manage(env, "seed_demo", "--flash-stock", str(stock_units))
            staff_user(env)
            server = stack.enter_context(
                GunicornServer(env, workers=4, worker_class=worker_class, migrate=False)
            )
            flash = product_id(env["DATABASE_URL"], "FLASH-001")
            post_orders(server.url, [order_body(flash, 1, "tok_decline")] * 20)  # warm-up
            servers[name] = (server, env)
        for number in range(rounds):
            order = variants[number % len(variants) :] + variants[: number % len(variants)]
            for name, _, viewers in order:
                server, env = servers[name]
                per_variant[name].append(
                    _round(
                        server,
                        env,
                        stock_units=stock_units,
                        buyers=buyers,
                        concurrency=concurrency,
                        dashboards=viewers,
                    )
                )
    summary = {
        name: {
            "rounds": results,
            "requests_per_s": _spread([r["requests_per_s"] for r in results]),
            "p99_ms": _spread([r["p99_ms"] for r in results]),
        }
        for name, results in per_variant.items()
    }
    without, with_ = variants[0][0], variants[1][0]
    return {
        "dashboards": dashboards,
        "rounds": rounds,
        "buyers": buyers,
        "stock": stock_units,
        "concurrency": concurrency,
        "workers": 4,
        "variants": summary,
        "throughput_ratio_median": round(
            summary[with_]["requests_per_s"]["median"]
            / summary[without]["requests_per_s"]["median"],
            3,
        ),
        "p99_ratio_median": round(
            summary[with_]["p99_ms"]["median"] / summary[without]["p99_ms"]["median"], 3
        ),
    }


def _print_dashboards(result: dict) -> None:
    print(
        f"Live dashboards beside an A1 flash sale: {result['buyers']} buyers, "
        f"{result['stock']} in stock, {result['concurrency']} concurrent, gunicorn "
        f"{result['workers']} workers, SQLite, {result['rounds']} alternating rounds"
    )
    print(f"{'variant':<28} {'req/s min-median-max':>24} {'p99 ms min-median-max':>26} streaming")
    for name, variant in result["variants"].items():
        rps, p99 = variant["requests_per_s"], variant["p99_ms"]
        streams = {r["streaming"] for r in variant["rounds"]}
        print(
            f"{name:<28} {rps['min']:>7}-{rps['median']:>7}-{rps['max']:>7} "
            f"{p99['min']:>8}-{p99['median']:>8}-{p99['max']:>8} "
            f"{'/'.join(map(str, sorted(streams)))}"
        )
    print("rounds (req/s, p99 ms):")
    for name, variant in result["variants"].items():
        rounds = ", ".join(f"{r['requests_per_s']}/{r['p99_ms']}" for r in variant["rounds"])
        print(f"  {name:<28} {rounds}")
    print(
        f"with / without dashboards, medians: throughput {result['throughput_ratio_median']}, "
        f"p99 {result['p99_ratio_median']} (target: throughput >= 0.90)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock", type=int, default=200)
    parser.add_argument("--buyers", type=int, default=800)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--full", action="store_true", help="stock 1000, 4000 buyers")
    parser.add_argument("--postgres-url", default=os.environ.get("RETAIL_TEST_POSTGRES_URL"))
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--dashboards", type=int, default=0, help="measure N live dashboards beside the buyers"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per variant (--dashboards)")
    args = parser.parse_args()
    if args.full:
        args.stock, args.buyers = 1000, 4000
    sizes = {"stock_units": args.stock, "buyers": args.buyers, "concurrency": args.concurrency}
    if args.dashboards:
        result = run_dashboards(dashboards=args.dashboards, rounds=args.rounds, **sizes)
        if args.json:
            print(json.dumps(result))
        else:
            _print_dashboards(result)
        ran = [r for v in result["variants"].values() for r in v["rounds"]]
        return 0 if all(r["oversell"] == 0 and r["errors_5xx"] == 0 for r in ran) else 1

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
