"""The HTTP gateway client against the fake gateway, and checkout behind the breaker."""

import socket
import time
from decimal import Decimal

import pytest
from django.test import override_settings

from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.models import Order
from payments.breaker import PaymentBreaker
from payments.gateways import GatewayUnavailable, payment_gateway
from payments.http_gateway import HttpGateway, _client_for
from payments.models import Payment
from retail.models import Metric


def _gateway(url: str, *, timeout: float = 2.0, fail_max: int = 5) -> HttpGateway:
    breaker = PaymentBreaker(fail_max=fail_max, reset_seconds=30, trial_seconds=5)
    return HttpGateway(client=_client_for(url, timeout), breaker=breaker)


def _charge(gateway: HttpGateway, token: str = "tok_ok", key: str = "key-1"):
    return gateway.charge(amount=Decimal("9.99"), currency="USD", token=token, idempotency_key=key)


@pytest.mark.django_db
def test_charges_succeed_and_declines_are_answers(fake_gateway):
    """tok_ok succeeds, tok_decline is declined; both are answers, not failures."""
    gateway = _gateway(fake_gateway.url)
    assert _charge(gateway, key="a").status == "succeeded"
    assert _charge(gateway, token="tok_decline", key="b").status == "declined"
    assert gateway.refund(charge_id="x", amount=Decimal("1")).refund_id.startswith("fake_re_")


@pytest.mark.django_db
def test_a_retried_charge_never_charges_twice(fake_gateway):
    """The same idempotency key answers the same charge: one charge at the gateway."""
    gateway = _gateway(fake_gateway.url)
    first, again = _charge(gateway, key="same"), _charge(gateway, key="same")
    assert first.charge_id == again.charge_id
    assert (fake_gateway.state()["charges"], fake_gateway.state()["charge_requests"]) == (1, 2)


@pytest.mark.django_db
@pytest.mark.parametrize("changes", [{"mode": "down"}, {"failure_rate": 1.0}])
def test_5xx_is_a_failure(fake_gateway, changes):
    """A 503 (down) or an injected 5xx raises GatewayUnavailable."""
    fake_gateway.control(**changes)
    with pytest.raises(GatewayUnavailable, match="HTTP 503"):
        _charge(_gateway(fake_gateway.url))


@pytest.mark.django_db
def test_a_slow_gateway_times_out_within_the_timeout(fake_gateway):
    """A gateway slower than RETAIL_GATEWAY_TIMEOUT_SECONDS is a failure, bounded in time."""
    fake_gateway.control(mode="slow", latency_ms=1500)
    started = time.monotonic()
    with pytest.raises(GatewayUnavailable, match="timed out"):
        _charge(_gateway(fake_gateway.url, timeout=0.3))
    assert time.monotonic() - started < 1.2


@pytest.mark.django_db
def test_a_refused_connection_is_a_failure():
    """Nobody listening is a failure (after one retry that cannot double-charge)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(GatewayUnavailable, match="ConnectError"):
        _charge(_gateway(f"http://127.0.0.1:{port}"))


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
