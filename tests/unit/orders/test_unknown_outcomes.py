"""Money is never taken twice or lost: timeouts, crashes and lost answers (SPEC §3.4).

Each test drives the real fake gateway over HTTP from a thread of the test process.
"""

import json
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

import orders.refunds
import orders.services
from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.models import Order, Refund
from orders.refunds import order_refund
from orders.services import OrderLine, order_place
from payments.models import Payment

pytestmark = pytest.mark.django_db

TIMEOUT = 0.4


class _ProcessKilled(BaseException):
    """The worker was killed (kill -9) at this point."""


@pytest.fixture
def product():
    return product_create(sku="SHOE-1", name="Shoe", price=Decimal("50.00"), stock=10)


@pytest.fixture
def gateway(fake_gateway):
    """The fake gateway, configured as the backend's, with a short whole-call timeout."""
    with override_settings(
        RETAIL_PAYMENT_GATEWAY_URL=fake_gateway.url,
        RETAIL_GATEWAY_TIMEOUT_SECONDS=TIMEOUT,
        RETAIL_CHECKOUT_RATE="1000/m",
    ):
        yield fake_gateway


def _checkout(client, product, quantity=1, token="tok_ok"):
    body = {"items": [{"product_id": product.pk, "quantity": quantity}], "payment_token": token}
    return client.post("/api/orders/", json.dumps(body), content_type="application/json")


def _reconcile() -> str:
    out = StringIO()
    call_command("reconcile_payments", "--older-than-seconds", "0", stdout=out)
    return out.getvalue()


def _stock(product) -> int:
    product.refresh_from_db()
    return product.stock


def _invariants_hold(gateway) -> None:
    """SPEC §3.4's money invariants, from the gateway's counters and the database."""
    state = gateway.state()
    paid = Order.objects.filter(status=Order.Status.PAID).count()
    assert state["charges_succeeded"] - state["refunds"] == paid
    assert state["charges_refunded_twice"] == 0
    assert not Order.objects.filter(status=Order.Status.PENDING).exists()
    assert all(row.consistent for row in stock_audit())


def test_a_timeout_answers_202_keeps_the_stock_and_is_never_charged_twice(client, product, gateway):
    """Finding 1: the gateway charged after the client gave up. The order stays pending with
    its stock (no second sale of it), the client holds a token to ask, and reconciliation
    pays the order from the one charge."""
    gateway.control(mode="slow", latency_ms=int(TIMEOUT * 2000))
    response = _checkout(client, product, quantity=2)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending" and body["payment"]["status"] == "unknown"
    assert int(response["Retry-After"]) > 0 and len(body["access_token"]) >= 32
    assert _stock(product) == 8
    order = Order.objects.get(pk=body["id"])
    assert Payment.objects.get(order=order).status == Payment.Status.UNKNOWN

    gateway.control(mode="up")
    read = client.get(f"/api/orders/{order.pk}/", HTTP_X_ORDER_TOKEN=body["access_token"])
    assert read.json()["status"] == "pending"
    assert "Charges replayed: 1 succeeded." in _reconcile()
    read = client.get(f"/api/orders/{order.pk}/", HTTP_X_ORDER_TOKEN=body["access_token"])
    assert read.json()["status"] == "paid" and read.json()["payment"]["status"] == "succeeded"
    assert gateway.state()["charges"] == 1
    assert Payment.objects.get(order=order).replay_token == ""
    assert _stock(product) == 8
    _invariants_hold(gateway)


def test_a_trickled_answer_answers_202_within_the_timeout(client, product, gateway):
    """Finding 3: a gateway that sends its answer a byte a second holds nobody past the
    timeout; the client gets JSON."""
    gateway.control(mode="trickle", latency_ms=5000)
    response = _checkout(client, product)
    assert response.status_code == 202 and response["Content-Type"] == "application/json"
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.UNKNOWN
    assert payment.latency_ms < (TIMEOUT + 1) * 1000


def test_a_refused_connection_fails_the_order_and_gives_the_stock_back(client, product, gateway):
    """A definitive failure (nothing charged) is not an unknown outcome: 503, stock back."""
    gateway.control(mode="down")
    response = _checkout(client, product)
    assert response.status_code == 503
    assert Order.objects.get().status == Order.Status.PAYMENT_FAILED
    assert _stock(product) == 10
    assert _reconcile().endswith("Charges replayed: none.\nRefunds replayed: none.\n")


@pytest.mark.parametrize("killed_at", ["payment_charge", "order_settle"])
def test_a_worker_killed_around_the_charge_leaves_a_pending_order_reconciled_once(
    product, gateway, monkeypatch, killed_at
):
    """Killed before the charge left, or after it was made but before the settle: either
    way one replay with the same key settles it, with one charge at the gateway."""

    def killed(**kwargs):
        raise _ProcessKilled

    monkeypatch.setattr(orders.services, killed_at, killed)
    with pytest.raises(_ProcessKilled):
        order_place(lines=[OrderLine(product_id=product.pk, quantity=1)], payment_token="tok_ok")
    monkeypatch.undo()
    charges_before = gateway.state()["charges"]
    assert charges_before == (1 if killed_at == "order_settle" else 0)
    assert Order.objects.get().status == Order.Status.PENDING

    _reconcile()
    assert Order.objects.get().status == Order.Status.PAID
    assert gateway.state()["charges"] == 1
    _invariants_hold(gateway)


def test_reconcile_exits_1_and_keeps_the_stock_while_the_gateway_is_down(client, product, gateway):
    """No answer to the replay either: still unknown, the stock still held, exit 1."""
    gateway.control(mode="slow", latency_ms=int(TIMEOUT * 2000))
    assert _checkout(client, product).status_code == 202
    gateway.control(mode="down")
    with pytest.raises(CommandError, match="Still unknown: payments") as failure:
        _reconcile()
    assert failure.value.returncode == 1
    assert Order.objects.get().status == Order.Status.PENDING
    assert _stock(product) == 9
    gateway.control(mode="up")
    _reconcile()
    _invariants_hold(gateway)


def _paid_order(client, product, quantity=2) -> Order:
    response = _checkout(client, product, quantity=quantity)
    assert response.status_code == 201
    return Order.objects.get(pk=response.json()["id"])


def _refund(client, order, staff_token):
    return client.post(
        f"/api/orders/{order.pk}/refund/",
        "{}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Token {staff_token}",
    )


def test_a_refund_timeout_then_a_retry_refunds_once(client, product, gateway, staff_token):
    """Finding 5: the first refund times out (202, refund pending); the retry replays the
    same key, so the gateway refunds once; the stock comes back once."""
    order = _paid_order(client, product)
    gateway.control(mode="slow", latency_ms=int(TIMEOUT * 2000))
    first = _refund(client, order, staff_token)
    assert first.status_code == 202
    assert first.json()["status"] == "paid" and first.json()["refund"]["status"] == "pending"
    gateway.control(mode="up")
    again = _refund(client, order, staff_token)
    assert again.status_code == 200 and again.json()["status"] == "refunded"
    assert again.json()["refund"]["status"] == "succeeded"
    state = gateway.state()
    assert (state["refunds"], state["charges_refunded_twice"]) == (1, 0)
    assert _stock(product) == 10
    assert _refund(client, order, staff_token).status_code == 409
    _invariants_hold(gateway)


def test_a_refund_killed_after_the_gateway_refunded_is_finished_by_a_retry_or_reconcile(
    client, product, gateway, staff_token, monkeypatch
):
    """Finding 4: never 409 "already under way" forever; the stock comes back."""
    orders_ = [_paid_order(client, product) for _ in range(2)]

    def killed(**kwargs):
        raise _ProcessKilled

    for order in orders_:
        with monkeypatch.context() as patch:
            patch.setattr(orders.refunds, "_refund_complete", killed)
            with pytest.raises(_ProcessKilled):
                order_refund(order_id=order.pk, actor=None)
        assert Refund.objects.get(order=order).status == Refund.Status.PENDING
    assert gateway.state()["refunds"] == 2
    assert _stock(product) == 6

    assert _refund(client, orders_[0], staff_token).status_code == 200
    assert "Refunds replayed: 1 succeeded." in _reconcile()
    assert set(Order.objects.values_list("status", flat=True)) == {"refunded"}
    assert gateway.state()["refunds"] == 2
    assert _stock(product) == 10
    _invariants_hold(gateway)


def test_a_refused_refund_leaves_the_order_refundable(client, product, gateway, staff_token):
    """Nothing refunded (gateway down): 503, no claim left behind, a later refund works."""
    order = _paid_order(client, product)
    gateway.control(mode="down")
    response = _refund(client, order, staff_token)
    assert response.status_code == 503 and response.json()["error"] == "payment_unavailable"
    assert not Refund.objects.exists()
    gateway.control(mode="up")
    assert _refund(client, order, staff_token).status_code == 200
    _invariants_hold(gateway)
