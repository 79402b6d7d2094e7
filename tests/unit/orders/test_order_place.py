"""Checkout services: reserve → charge → settle moves stock and statuses exactly."""

from decimal import Decimal

import pytest

from catalog.exceptions import OutOfStock, ProductNotFound
from orders.models import Order
from orders.refunds import order_refund
from orders.services import OrderLine, order_place
from payments.exceptions import GatewayUnavailable
from payments.models import Payment

pytestmark = pytest.mark.django_db


class _DownGateway:
    """A gateway that cannot answer, as a crashed payment provider would."""

    def charge(self, **kwargs):
        raise GatewayUnavailable("503 from gateway")

    def refund(self, **kwargs):
        raise GatewayUnavailable("503 from gateway")


def test_place_paid_order_takes_stock_and_totals_lines(products, stock_of):
    """A paid order takes each line's quantity and totals price x quantity."""
    tee, mug = products["TEE-1"], products["MUG-1"]
    placed = order_place(
        lines=[OrderLine(product_id=mug.pk, quantity=2), OrderLine(product_id=tee.pk, quantity=3)],
        payment_token="tok_ok",
    )
    assert placed.order.status == Order.Status.PAID
    assert placed.order.total == Decimal("19.90") * 3 + Decimal("12.50") * 2
    assert placed.payment.status == Payment.Status.SUCCEEDED
    assert placed.payment.latency_ms is not None
    assert (stock_of(tee), stock_of(mug)) == (7, 3)


def test_declined_order_gives_every_line_back(products, stock_of):
    """A declined payment ends payment_failed with all stock returned."""
    tee, mug = products["TEE-1"], products["MUG-1"]
    placed = order_place(
        lines=[OrderLine(product_id=tee.pk, quantity=1), OrderLine(product_id=mug.pk, quantity=5)],
        payment_token="tok_decline",
    )
    assert placed.order.status == Order.Status.PAYMENT_FAILED
    assert placed.payment.status == Payment.Status.DECLINED
    assert (stock_of(tee), stock_of(mug)) == (10, 5)


def test_gateway_failure_fails_the_order_and_gives_stock_back(products, stock_of, monkeypatch):
    """When the gateway cannot answer, the payment is failed and the stock returned."""
    monkeypatch.setattr("payments.services.payment_gateway", lambda: _DownGateway())
    tee = products["TEE-1"]
    placed = order_place(lines=[OrderLine(product_id=tee.pk, quantity=4)], payment_token="tok_ok")
    assert placed.order.status == Order.Status.PAYMENT_FAILED
    assert placed.payment.status == Payment.Status.FAILED
    assert stock_of(tee) == 10


def test_out_of_stock_reserves_nothing(products, stock_of):
    """When one line cannot be served, no line is reserved and no order is left."""
    tee, last = products["TEE-1"], products["LAST-1"]
    with pytest.raises(OutOfStock):
        order_place(
            lines=[
                OrderLine(product_id=tee.pk, quantity=2),
                OrderLine(product_id=last.pk, quantity=3),
            ],
            payment_token="tok_ok",
        )
    assert (stock_of(tee), stock_of(last)) == (10, 1)
    assert not Order.objects.exists()
    assert not Payment.objects.exists()


def test_unknown_product_reserves_nothing(products, stock_of):
    """An unknown product id is refused before any stock moves."""
    with pytest.raises(ProductNotFound):
        order_place(
            lines=[
                OrderLine(product_id=products["TEE-1"].pk, quantity=1),
                OrderLine(product_id=10**9, quantity=1),
            ],
            payment_token="tok_ok",
        )
    assert stock_of(products["TEE-1"]) == 10


def test_refund_returns_stock_once(products, stock_of, staff_token):
    """A refund marks the order refunded and returns its stock; a second one is refused."""
    from orders.exceptions import OrderNotRefundable

    tee = products["TEE-1"]
    placed = order_place(lines=[OrderLine(product_id=tee.pk, quantity=6)], payment_token="tok_ok")
    assert stock_of(tee) == 4
    order_refund(order_id=placed.order.pk, actor=None)
    assert Order.objects.get(pk=placed.order.pk).status == Order.Status.REFUNDED
    assert stock_of(tee) == 10
    with pytest.raises(OrderNotRefundable):
        order_refund(order_id=placed.order.pk, actor=None)
    assert stock_of(tee) == 10


def test_refund_left_undone_when_gateway_fails(products, stock_of, monkeypatch):
    """If the gateway cannot refund, the order stays paid and the refund can be retried."""
    from orders.exceptions import PaymentUnavailable
    from orders.models import Refund

    tee = products["TEE-1"]
    placed = order_place(lines=[OrderLine(product_id=tee.pk, quantity=2)], payment_token="tok_ok")
    monkeypatch.setattr("orders.refunds.payment_gateway", lambda: _DownGateway())
    with pytest.raises(PaymentUnavailable):
        order_refund(order_id=placed.order.pk, actor=None)
    assert Order.objects.get(pk=placed.order.pk).status == Order.Status.PAID
    assert not Refund.objects.exists()
    assert stock_of(tee) == 8
    monkeypatch.undo()
    order_refund(order_id=placed.order.pk, actor=None)
    assert Order.objects.get(pk=placed.order.pk).status == Order.Status.REFUNDED
