"""A gateway that trickles its answers holds nobody past the timeout; its secret stays secret.

Gunicorn (2 workers) in front of the fake gateway in `trickle` mode (status and headers at
once, then a byte at a time over 4 s), with a timeout of 1 s and credentials in the gateway
URL: every checkout and refund answers JSON within the timeout plus a second, the outcomes
are reconciled once the gateway answers again, and the secret appears in no log file.
"""

import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.load import money_broken, order_body, post_orders, product_id, query
from tests.support.servers import FakeGateway, GunicornServer, backend_env, manage, staff_token

pytestmark = pytest.mark.load

TIMEOUT_SECONDS = 1.0
SECRET = "sk_live_f4k3s3cr3t"


def test_no_checkout_or_refund_waits_past_the_timeout_and_no_secret_is_logged(
    database_url, log_dir
):
    """Under `trickle`, each answer is JSON within timeout + 1 s; reconciled afterwards."""
    with FakeGateway(backend_env(database_url=database_url, log_dir=log_dir)) as gateway:
        gateway_url = gateway.url.replace("http://", f"http://acct:{SECRET}@")
        env = backend_env(
            database_url=database_url,
            log_dir=log_dir,
            redis_url=os.environ.get("REDIS_URL"),
            RETAIL_PAYMENT_GATEWAY_URL=gateway_url,
            RETAIL_GATEWAY_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
            # The breaker stays closed: this measures the calls, not the fast-fail.
            RETAIL_BREAKER_FAIL_MAX="1000",
            RETAIL_CHECKOUT_RATE="100000/m",
        )
        with GunicornServer(env, workers=2) as server:
            manage(env, "seed_demo")
            token = staff_token(env)
            opening = dict(query(database_url, "SELECT id, stock FROM catalog_product"))
            product = product_id(database_url, "TEE-001")
            paid = post_orders(server.url, [order_body(product)] * 3, concurrency=3)
            assert [a.status for a in paid] == [201] * 3

            gateway.control(mode="trickle", latency_ms=4000)
            # As many clients as workers: the time measured is the request's, not a queue's.
            checkouts = post_orders(server.url, [order_body(product)] * 8, concurrency=2)
            with httpx.Client(base_url=server.url, timeout=30) as client:

                def refund(order_id: int) -> httpx.Response:
                    return client.post(
                        f"/api/orders/{order_id}/refund/",
                        json={},
                        headers={"Authorization": f"Token {token}"},
                    )

                with ThreadPoolExecutor(max_workers=2) as pool:
                    refunds = list(pool.map(refund, [a.body["id"] for a in paid]))

            gateway.control(mode="up")
        reconciled = manage(
            {**env, "RETAIL_LOG_STDOUT": "off"},
            "reconcile_payments",
            "--older-than-seconds",
            "0",
        )
        state = gateway.state()

    assert {a.status for a in checkouts} == {202}
    assert all(a.headers["content-type"] == "application/json" for a in checkouts)
    assert max(a.latency_ms for a in checkouts) < (TIMEOUT_SECONDS + 1) * 1000
    assert {r.status_code for r in refunds} == {202}
    assert max(r.elapsed.total_seconds() for r in refunds) < TIMEOUT_SECONDS + 1
    assert all(r.json()["refund"]["status"] == "pending" for r in refunds)
    # The gateway call itself, as the backend timed it.
    latencies = query(database_url, "SELECT latency_ms FROM payments_payment")
    assert max(latency for (latency,) in latencies) < TIMEOUT_SECONDS * 1000 + 100
    assert "Charges replayed: 8 succeeded." in reconciled
    assert "Refunds replayed: 3 succeeded." in reconciled
    assert money_broken(database_url, gateway_state=state, opening_stock=opening) == {}
    leaked = [
        path.name for path in log_dir.rglob("*") if path.is_file() and SECRET in path.read_text()
    ]
    assert leaked == []
