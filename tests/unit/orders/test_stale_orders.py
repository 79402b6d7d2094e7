"""`release_stale_orders`: a pending order whose payment never resolved gives its stock back."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

import orders.services
from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.models import Order, Refund
from orders.services import OrderLine, order_place, order_release_stale
from payments.gateways import GatewayUnavailable, RefundResult, SimulatedGateway
from payments.models import Payment
from retail.models import Metric

pytestmark = pytest.mark.django_db


class _ProcessKilled(BaseException):
    """The worker died between reserving the stock and charging the payment."""


@pytest.fixture
def product():
    return product_create(sku="STALE-1", name="Stale", price=Decimal("3.00"), stock=10)


def _abandoned_order(product, monkeypatch, *, quantity: int, age_minutes: int) -> Order:
    def killed(**kwargs):
        raise _ProcessKilled

    with monkeypatch.context() as patch:
        patch.setattr(orders.services, "payment_charge", killed)
        with pytest.raises(_ProcessKilled):
            order_place(
                lines=[OrderLine(product_id=product.pk, quantity=quantity)], payment_token="tok_ok"
            )
    order = Order.objects.latest("pk")
    Order.objects.filter(pk=order.pk).update(
        created_at=timezone.now() - timedelta(minutes=age_minutes)
    )
    return order


def test_stale_pending_order_is_released_through_the_ledger(product, monkeypatch):
    """An old pending order fails, its payment fails, its stock comes back as stale_release."""
    stale = _abandoned_order(product, monkeypatch, quantity=3, age_minutes=30)
    fresh = _abandoned_order(product, monkeypatch, quantity=2, age_minutes=1)
    product.refresh_from_db()
    assert product.stock == 5

    assert order_release_stale(older_than=timedelta(minutes=15)) == [stale.pk]

    product.refresh_from_db()
    assert product.stock == 8
    assert Order.objects.get(pk=stale.pk).status == Order.Status.PAYMENT_FAILED
    assert Order.objects.get(pk=fresh.pk).status == Order.Status.PENDING
    assert Payment.objects.get(order=stale).status == Payment.Status.FAILED
    assert product.movements.filter(reason="stale_release", order=stale).get().delta == 3
    assert all(row.consistent for row in stock_audit())


def test_running_again_releases_nothing_twice(product, monkeypatch):
    """A second run (cron overlap) finds nothing left to release."""
    _abandoned_order(product, monkeypatch, quantity=3, age_minutes=30)
    assert len(order_release_stale(older_than=timedelta(minutes=15))) == 1
    assert order_release_stale(older_than=timedelta(minutes=15)) == []
    product.refresh_from_db()
    assert product.stock == 10


def test_paid_and_failed_orders_are_never_touched(product):
    """Only pending orders are stale: settled ones keep their status and stock."""
    order_place(lines=[OrderLine(product_id=product.pk, quantity=1)], payment_token="tok_ok")
    Order.objects.update(created_at=timezone.now() - timedelta(days=1))
    assert order_release_stale(older_than=timedelta(minutes=1)) == []
    assert Order.objects.get().status == Order.Status.PAID


def test_command_reports_what_it_released(product, monkeypatch):
    """The command prints the released orders."""
    stale = _abandoned_order(product, monkeypatch, quantity=1, age_minutes=90)
    out = StringIO()
    call_command("release_stale_orders", "--older-than-minutes", "60", stdout=out)
    assert out.getvalue() == f"Released 1 stale order(s).\n  order #{stale.pk}\n"


def test_command_refuses_a_threshold_below_one_minute():
    """A zero threshold would race live checkouts: it is a usage error."""
    with pytest.raises(CommandError):
        call_command("release_stale_orders", "--older-than-minutes", "0")


def _sweep_during_the_charge(monkeypatch, refund) -> list[dict]:
    """Make the next charge succeed only after the sweeper released its order.

    Returns the refunds the gateway is asked for; `refund` answers them.
    """
    real_charge = orders.services.payment_charge
    refunds: list[dict] = []

    def charge_after_release(*, payment, payment_token):
        # The charge is slow; meanwhile the order looks stale and the sweeper runs.
        Order.objects.filter(pk=payment.order_id).update(
            created_at=timezone.now() - timedelta(minutes=30)
        )
        assert order_release_stale(older_than=timedelta(minutes=15)) == [payment.order_id]
        return real_charge(payment=payment, payment_token=payment_token)

    def gateway_refund(**kwargs):
        refunds.append(kwargs)
        return refund(**kwargs)

    monkeypatch.setattr(orders.services, "payment_charge", charge_after_release)
    monkeypatch.setattr(SimulatedGateway, "refund", lambda self, **kw: gateway_refund(**kw))
    return refunds


def _place_while_the_sweeper_releases(product, monkeypatch, refund) -> Order:
    """Place an order whose charge succeeds after the sweeper released the order."""
    refunds = _sweep_during_the_charge(monkeypatch, refund)
    placed = order_place(
        lines=[OrderLine(product_id=product.pk, quantity=2)], payment_token="tok_ok"
    )
    payment = Payment.objects.get(order=placed.order)
    assert refunds == [{"charge_id": payment.gateway_charge_id, "amount": Decimal("6.00")}]
    return placed.order


def test_the_client_of_a_released_order_is_told_the_payment_did_not_complete(
    client, product, monkeypatch
):
    """No 201 for an order that is not paid: 503 payment_unavailable, as for a failed charge."""
    _sweep_during_the_charge(monkeypatch, lambda **kw: RefundResult(refund_id="re_api"))
    response = client.post(
        "/api/orders/",
        {"items": [{"product_id": product.pk, "quantity": 2}], "payment_token": "tok_ok"},
        content_type="application/json",
    )
    order = Order.objects.get()
    assert response.status_code == 503 and "Retry-After" in response
    body = response.json()
    assert body["error"] == "payment_unavailable" and "access_token" not in body
    assert order.status == Order.Status.PAYMENT_FAILED
    assert Refund.objects.get(order=order).status == Refund.Status.SUCCEEDED


def test_a_charge_that_succeeds_after_the_release_is_refunded(product, monkeypatch):
    """Stock back on sale once, the money back to the customer, the refund on record."""
    order = _place_while_the_sweeper_releases(
        product, monkeypatch, lambda **kw: RefundResult(refund_id="re_after_release")
    )
    assert order.status == Order.Status.PAYMENT_FAILED
    assert Payment.objects.get(order=order).status == Payment.Status.SUCCEEDED
    refund = Refund.objects.get(order=order)
    assert refund.status == Refund.Status.SUCCEEDED and refund.amount == Decimal("6.00")
    assert refund.gateway_refund_id == "re_after_release" and refund.created_by is None
    product.refresh_from_db()
    assert product.stock == 10
    assert list(product.movements.filter(order=order).values_list("reason", "delta")) == [
        ("sale", -2),
        ("stale_release", 2),
    ]
    assert all(row.consistent for row in stock_audit())
    metric = Metric.objects.get(metric_type="refunds_per_day")
    assert metric.metadata == {"order_id": order.pk, "reason": "released"}


def test_a_failed_refund_after_the_release_stays_pending_for_a_person(product, monkeypatch):
    """The gateway is down for the refund: the pending refund row and an ERROR line say so."""

    def unavailable(**kwargs):
        raise GatewayUnavailable("connection refused")

    order = _place_while_the_sweeper_releases(product, monkeypatch, unavailable)
    assert order.status == Order.Status.PAYMENT_FAILED
    refund = Refund.objects.get(order=order)
    assert refund.status == Refund.Status.PENDING and refund.completed_at is None
    assert not Metric.objects.filter(metric_type="refunds_per_day").exists()
    lines = (settings.RETAIL_LOG_DIR / "application.log").read_text("utf-8").splitlines()
    [failed] = [
        r
        for r in map(json.loads, lines)
        if r.get("event") == "payment.refund_after_release_failed" and r["order_id"] == order.pk
    ]
    assert failed["level"] == "ERROR" and failed["refund_id"] == refund.pk
    assert "connection refused" in failed["exc_info"]
