"""Drive concurrent checkouts over HTTP and audit the database afterwards."""

import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import create_engine, text


@dataclass(frozen=True)
class Answer:
    status: int
    latency_ms: float
    body: Any
    headers: dict[str, str]


def post_orders(
    url: str, bodies: list[dict], *, concurrency: int = 16, timeout: float = 60
) -> list[Answer]:
    """POST every body to /api/orders/ from `concurrency` threads; answers in body order."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(base_url=url, timeout=timeout, limits=limits) as client:

        def one(body: dict) -> Answer:
            started = time.perf_counter()
            response = client.post("/api/orders/", json=body)
            latency_ms = (time.perf_counter() - started) * 1000
            try:
                data = response.json()
            except ValueError:
                data = response.text
            return Answer(response.status_code, latency_ms, data, dict(response.headers))

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(one, bodies))


def order_body(product_id: int, quantity: int = 1, token: str = "tok_ok") -> dict:
    return {"items": [{"product_id": product_id, "quantity": quantity}], "payment_token": token}


def statuses(answers: list[Answer]) -> Counter[int]:
    return Counter(answer.status for answer in answers)


def percentile(values: list[float], fraction: float) -> float:
    """Return the exact `fraction` quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(answers: list[Answer]) -> dict[str, float]:
    latencies = [answer.latency_ms for answer in answers]
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
    }


def _engine(database_url: str):
    if database_url.startswith(("postgresql://", "postgres://")):
        database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    return create_engine(database_url)


def query(database_url: str, sql: str, **params) -> list[tuple]:
    """Run one read-only SQL statement against the backend's database."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def execute(database_url: str, sql: str, **params) -> None:
    """Run one SQL statement that writes, in its own transaction."""
    engine = _engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql), params)
    finally:
        engine.dispose()


def product_id(database_url: str, sku: str) -> int:
    return query(database_url, "SELECT id FROM catalog_product WHERE sku = :sku", sku=sku)[0][0]


def stock(database_url: str, sku: str) -> int:
    return query(database_url, "SELECT stock FROM catalog_product WHERE sku = :sku", sku=sku)[0][0]


_INVARIANTS = {
    # A1: stock never negative and always the sum of its ledger.
    "ledger_mismatch": """
        SELECT p.sku FROM catalog_product p
        LEFT JOIN (SELECT product_id, SUM(delta) AS total FROM catalog_stockmovement
                   GROUP BY product_id) m ON m.product_id = p.id
        WHERE p.stock < 0 OR p.stock != COALESCE(m.total, 0)""",
    # Every paid order has exactly one succeeded payment.
    "paid_without_one_success": """
        SELECT o.id FROM orders_order o WHERE o.status = 'paid' AND
        (SELECT COUNT(*) FROM payments_payment p
         WHERE p.order_id = o.id AND p.status = 'succeeded') != 1""",
    # A failed order holds no stock: its movements cancel out.
    "failed_holding_stock": """
        SELECT o.id FROM orders_order o WHERE o.status = 'payment_failed' AND
        COALESCE((SELECT SUM(m.delta) FROM catalog_stockmovement m
                  WHERE m.order_id = o.id), 0) != 0""",
    # A succeeded payment belongs to a paid (or refunded) order.
    "success_on_unpaid_order": """
        SELECT p.id FROM payments_payment p JOIN orders_order o ON o.id = p.order_id
        WHERE p.status = 'succeeded' AND o.status NOT IN ('paid', 'refunded')""",
    # Nothing is left half-done once the load has finished.
    "pending_orders": "SELECT id FROM orders_order WHERE status = 'pending'",
}


def nothing_lost(database_url: str) -> dict[str, list]:
    """Return every broken invariant of orders, payments and stock (empty when all hold)."""
    broken = {}
    for name, sql in _INVARIANTS.items():
        rows = query(database_url, sql)
        if rows:
            broken[name] = [row[0] for row in rows]
    return broken


def money_broken(
    database_url: str, *, gateway_state: dict, opening_stock: dict[int, int]
) -> dict[str, object]:
    """Return every broken money invariant of SPEC §3.4 (empty when all hold).

    Succeeded charges − refunds at the gateway = paid orders; no order pending, no refund
    pending; each product's stock = opening stock − units of paid orders, and its ledger
    balances; no charge refunded twice, one payment per order, every charge known locally.
    """
    broken: dict[str, object] = dict(nothing_lost(database_url))
    paid = query(database_url, "SELECT COUNT(*) FROM orders_order WHERE status = 'paid'")[0][0]
    net = gateway_state["charges_succeeded"] - gateway_state["refunds"]
    if net != paid:
        broken["charges_minus_refunds_vs_paid_orders"] = (net, paid)
    if gateway_state["charges_refunded_twice"]:
        broken["charges_refunded_twice"] = gateway_state["charges_refunded_twice"]
    succeeded = query(
        database_url, "SELECT COUNT(*) FROM payments_payment WHERE status = 'succeeded'"
    )[0][0]
    if succeeded != gateway_state["charges_succeeded"]:
        broken["succeeded_charges_vs_gateway"] = (succeeded, gateway_state["charges_succeeded"])
    refunded = query(database_url, "SELECT COUNT(*) FROM orders_refund WHERE status = 'succeeded'")[
        0
    ][0]
    if refunded != gateway_state["refunds"]:
        broken["refunds_vs_gateway"] = (refunded, gateway_state["refunds"])
    pending_refunds = query(database_url, "SELECT id FROM orders_refund WHERE status = 'pending'")
    if pending_refunds:
        broken["pending_refunds"] = [row[0] for row in pending_refunds]
    sold = dict(
        query(
            database_url,
            """SELECT i.product_id, SUM(i.quantity) FROM orders_orderitem i
               JOIN orders_order o ON o.id = i.order_id WHERE o.status = 'paid'
               GROUP BY i.product_id""",
        )
    )
    stocks = dict(query(database_url, "SELECT id, stock FROM catalog_product"))
    wrong = {
        product: (stocks[product], opening - sold.get(product, 0))
        for product, opening in opening_stock.items()
        if stocks[product] != opening - sold.get(product, 0)
    }
    if wrong:
        broken["stock_vs_opening_minus_paid"] = wrong
    return broken
