"""One request across services: `retailctl trace` shows the backend's and the gateway's lines.

Gunicorn in front of the fake gateway (its own process, writing gateway.log): a paid
checkout, a declined card, an unknown outcome (gateway slow past the timeout) and a refund,
each sent with a known X-Request-ID and traceparent. `trace --json` returns both services'
lines in time order, with SPEC §3.5's business events and the caller's trace id; no card
token, secret or hostile header value reaches any log file.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.load import order_body, product_id
from tests.support.servers import (
    FakeGateway,
    GunicornServer,
    backend_env,
    manage,
    staff_token,
    wait_for,
)

pytestmark = pytest.mark.load

TOKEN = "tok_s3cr3t_card_4242"
# Control characters never get past gunicorn (400); this does, and must not be logged.
HOSTILE = "<script>alert('pwned')</script>;$(id)"


def _trace(log_dir: Path, request_id: str) -> list[dict]:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("retailctl")), "trace", request_id, "--json"],
        env={**os.environ, "RETAIL_LOG_DIR": str(log_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def _events_arrived(log_dir: Path, request_id: str, wanted: set[str]):
    records = _trace(log_dir, request_id)
    return records if wanted <= {record.get("event") for record in records} else None


def _traced(request_id: str, n: int) -> dict[str, str]:
    trace_id = f"{n:032x}"
    return {"X-Request-ID": request_id, "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}


def test_trace_shows_every_service_line_of_checkouts_and_a_refund(database_url, log_dir):
    """Paid, declined, unknown and refunded: both services, in time order, one trace id."""
    with FakeGateway(backend_env(database_url=database_url, log_dir=log_dir)) as gateway:
        env = backend_env(
            database_url=database_url,
            log_dir=log_dir,
            RETAIL_PAYMENT_GATEWAY_URL=gateway.url.replace("http://", "http://acct:sk_live_x@"),
            RETAIL_GATEWAY_TIMEOUT_SECONDS="0.5",
            RETAIL_CHECKOUT_RATE="100000/m",
        )
        with GunicornServer(env, workers=2) as server:
            manage(env, "seed_demo")
            staff = staff_token(env)
            product = product_id(database_url, "TEE-001")
            with httpx.Client(base_url=server.url, timeout=30) as client:
                paid = client.post(
                    "/api/orders/",
                    json=order_body(product, token=TOKEN),
                    headers=_traced("t-paid", 1),
                )
                declined = client.post(
                    "/api/orders/",
                    json=order_body(product, token="tok_decline"),
                    headers=_traced("t-declined", 2),
                )
                gateway.control(mode="slow", latency_ms=1500)
                unknown = client.post(
                    "/api/orders/",
                    json=order_body(product, token=TOKEN),
                    headers=_traced("t-unknown", 3),
                )
                gateway.control(mode="up")
                refunded = client.post(
                    f"/api/orders/{paid.json()['id']}/refund/",
                    json={},
                    headers={**_traced("t-refund", 4), "Authorization": f"Token {staff}"},
                )
                hostile = client.get(
                    "/api/products/", headers={"X-Request-ID": HOSTILE, "User-Agent": HOSTILE}
                )
            assert [r.status_code for r in (paid, declined, unknown, refunded, hostile)] == [
                201, 402, 202, 200, 200,
            ]  # fmt: skip
            expected = {
                "t-paid": {"http.request", "order.placed", "payment.charge", "order.paid",
                           "http.response", "gateway.charge"},
                "t-declined": {"order.placed", "payment.charge", "order.payment_failed",
                               "gateway.charge"},
                "t-unknown": {"order.placed", "payment.charge", "order.pending", "gateway.charge"},
                "t-refund": {"http.request", "refund.made", "http.response", "gateway.refund"},
            }  # fmt: skip
            traces = {
                request_id: wait_for(
                    lambda request_id=request_id, wanted=wanted: _events_arrived(
                        log_dir, request_id, wanted
                    ),
                    timeout=30,
                    what=f"the lines of {request_id}",
                    every=0.2,
                )
                for request_id, wanted in expected.items()
            }

    for n, (request_id, records) in enumerate(traces.items(), start=1):
        stamps = [record["timestamp"] for record in records]
        assert stamps == sorted(stamps), request_id
        assert {record["service"] for record in records} == {"backend", "gateway"}, request_id
        assert {record["trace_id"] for record in records} == {f"{n:032x}"}, request_id
    charges = {r["event"]: r for r in traces["t-paid"]}
    assert charges["payment.charge"]["outcome"] == "succeeded"
    assert charges["order.paid"]["order_id"] == charges["order.placed"]["order_id"]
    assert {r["event"]: r for r in traces["t-declined"]}["payment.charge"]["outcome"] == "declined"
    assert {r["event"]: r for r in traces["t-unknown"]}["payment.charge"]["outcome"] == "unknown"
    logged = "".join(path.read_text(errors="replace") for path in log_dir.rglob("*.log*"))
    for secret in (TOKEN, "sk_live_x", "pwned", "<script>"):
        assert secret not in logged, secret
