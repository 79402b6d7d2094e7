"""The HTTP client of the payment gateway: what each kind of failure says about the money."""

import base64
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.models import Order
from payments.breaker import PaymentBreaker
from payments.exceptions import GatewayUnavailable, OutcomeUnknown
from payments.http_gateway import HttpGateway
from payments.models import Payment
from payments.services import payment_gateway
from retail.models import Metric


def _gateway(url: str, *, timeout: float = 2.0, fail_max: int = 5) -> HttpGateway:
    breaker = PaymentBreaker(fail_max=fail_max, reset_seconds=30, trial_seconds=5)
    return HttpGateway(base_url=url, timeout=timeout, breaker=breaker)


def _charge(gateway: HttpGateway, token: str = "tok_ok", key: str = "key-1"):
    return gateway.charge(amount=Decimal("9.99"), currency="USD", token=token, idempotency_key=key)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.django_db
def test_charges_succeed_and_declines_are_answers(fake_gateway):
    """tok_ok succeeds, tok_decline is declined; both are answers, not failures."""
    gateway = _gateway(fake_gateway.url)
    charge = _charge(gateway, key="a")
    assert charge.status == "succeeded"
    assert _charge(gateway, token="tok_decline", key="b").status == "declined"
    refund = gateway.refund(charge_id=charge.charge_id, amount=Decimal("1"), idempotency_key="r")
    assert refund.refund_id.startswith("fake_re_")


@pytest.mark.django_db
def test_a_replayed_charge_or_refund_is_never_made_twice(fake_gateway):
    """The same idempotency key answers the first charge (or refund) again."""
    gateway = _gateway(fake_gateway.url)
    first, again = _charge(gateway, key="same"), _charge(gateway, key="same")
    assert first.charge_id == again.charge_id
    refunds = [
        gateway.refund(charge_id=first.charge_id, amount=Decimal("9.99"), idempotency_key="r1")
        for _ in range(2)
    ]
    assert refunds[0] == refunds[1]
    state = fake_gateway.state()
    assert (state["charges"], state["charge_requests"]) == (1, 2)
    assert (state["refunds"], state["refund_requests"], state["charges_refunded_twice"]) == (
        1,
        2,
        0,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("changes", [{"mode": "down"}, {"failure_rate": 1.0}])
def test_5xx_means_nothing_was_charged(fake_gateway, changes):
    """A 503 (down) or an injected 5xx raises GatewayUnavailable, and nothing is charged."""
    fake_gateway.control(**changes)
    with pytest.raises(GatewayUnavailable, match="HTTP 503"):
        _charge(_gateway(fake_gateway.url))
    assert fake_gateway.state()["charges"] == 0


@pytest.mark.django_db
def test_a_timeout_is_an_unknown_outcome_not_a_failure(fake_gateway):
    """A gateway slower than the timeout may have charged: OutcomeUnknown, and it did."""
    fake_gateway.control(mode="slow", latency_ms=800)
    with pytest.raises(OutcomeUnknown):
        _charge(_gateway(fake_gateway.url, timeout=0.3), key="late")
    assert not issubclass(OutcomeUnknown, GatewayUnavailable)
    fake_gateway.control(mode="up")
    # The charge was carried out after the client gave up; a replay learns its outcome.
    assert _charge(_gateway(fake_gateway.url), key="late").status == "succeeded"
    state = fake_gateway.state()
    assert (state["charges"], state["charges_succeeded"]) == (1, 1)


@pytest.mark.django_db
def test_a_trickled_answer_is_cut_at_the_deadline_of_the_whole_call(fake_gateway):
    """Status and headers at once, then a byte at a time: the call still ends at its timeout.

    A per-read timeout (httpx's, urllib3's) would wait for every byte, here 3 s.
    """
    fake_gateway.control(mode="trickle", latency_ms=3000)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown):
        _charge(_gateway(fake_gateway.url, timeout=0.5))
    assert time.monotonic() - started < 1.5


@pytest.mark.django_db
def test_a_refused_connection_is_a_failure():
    """Nobody listening is a failure (after one retry that cannot double-charge)."""
    with pytest.raises(GatewayUnavailable, match="ConnectError"):
        _charge(_gateway(f"http://127.0.0.1:{_free_port()}"))


@pytest.fixture
def hang_up_server() -> Iterator[str]:
    """A server that reads the request, then closes the connection without answering."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.mark.django_db
def test_a_connection_lost_after_sending_is_an_unknown_outcome(hang_up_server):
    """The request arrived; its answer never came: maybe charged, so not a failure."""
    with pytest.raises(OutcomeUnknown, match="RemoteProtocolError|ReadError"):
        _charge(_gateway(hang_up_server))


class _RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({"path": self.path, "authorization": self.headers["Authorization"]})
        body = b'{"error": "unavailable"}'
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        """Quiet."""


def test_credentials_in_the_url_go_as_basic_auth_and_into_no_message():
    """`http://acct:secret@host` authenticates each call; no error text shows the secret."""
    handler = type("Handler", (_RecordingHandler,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"http://acct:sk_live_s%40cret@127.0.0.1:{server.server_address[1]}/v1/"
        with pytest.raises(GatewayUnavailable) as failure:
            HttpGateway(base_url=url, timeout=2).charge(
                amount=Decimal("1"), currency="USD", token="tok_ok", idempotency_key="k"
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    expected = "Basic " + base64.b64encode(b"acct:sk_live_s@cret").decode()
    assert handler.seen == [{"path": "/v1/charges", "authorization": expected}]
    assert "sk_live" not in str(failure.value) and "acct" not in str(failure.value)


def test_control_refuses_unknown_modes(fake_gateway):
    """/_control validates its input."""
    import httpx

    response = httpx.post(f"{fake_gateway.url}/_control", json={"mode": "sideways"})
    assert response.status_code == 400


@pytest.fixture
def flash(db):
    return product_create(sku="FLASH-B", name="Flash", price=Decimal("10.00"), stock=20)


def _post(client, product, token="tok_ok"):
    return client.post(
        "/api/orders/",
        {"items": [{"product_id": product.pk, "quantity": 1}], "payment_token": token},
        content_type="application/json",
    )


@pytest.mark.django_db
def test_checkout_fails_fast_once_the_breaker_is_open(client, flash, fake_gateway):
    """Gateway down: failures give 503 with stock back; past FAIL_MAX, 503 before reserving."""
    fake_gateway.control(mode="down")
    with override_settings(
        RETAIL_PAYMENT_GATEWAY_URL=fake_gateway.url,
        RETAIL_BREAKER_FAIL_MAX=2,
        RETAIL_BREAKER_RESET_SECONDS=30,
        RETAIL_CHECKOUT_RATE="1000/m",
    ):
        assert payment_gateway().__class__ is HttpGateway
        failed = [_post(client, flash) for _ in range(2)]
        assert [r.status_code for r in failed] == [503, 503]
        assert all(r.json()["error"] == "payment_unavailable" for r in failed)
        orders_before = Order.objects.count()

        rejected = _post(client, flash)
        assert rejected.status_code == 503
        assert rejected.json()["error"] == "payment_unavailable"
        assert 1 <= int(rejected["Retry-After"]) <= 30
    # The fast-fail reserved nothing and created nothing.
    assert Order.objects.count() == orders_before == 2
    assert set(Order.objects.values_list("status", flat=True)) == {"payment_failed"}
    assert set(Payment.objects.values_list("status", flat=True)) == {"failed"}
    flash.refresh_from_db()
    assert flash.stock == 20
    assert all(row.consistent for row in stock_audit())
    [fast_fail] = Metric.objects.filter(metric_type="payment_fast_fail")
    assert 0 < fast_fail.value < 100
    [opened] = Metric.objects.filter(metric_type="circuit_breaker_state")
    assert (opened.metadata["from"], opened.metadata["to"]) == ("closed", "open")
    assert fake_gateway.state()["charges"] == 0
