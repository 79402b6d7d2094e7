"""`release_stale_orders`: a pending order is settled by a replay of its charge, never guessed."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

import orders.services
from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.models import Order, Refund
from orders.reconciliation import order_release_stale
from orders.services import OrderLine, order_place
from payments.models import Payment

pytestmark = pytest.mark.django_db


class _ProcessKilled(BaseException):
    """The worker died between reserving the stock and charging the payment."""


@pytest.fixture
def product():
    return product_create(sku="STALE-1", name="Stale", price=Decimal("3.00"), stock=10)


def _abandoned_order(
    product, monkeypatch, *, quantity: int, age_minutes: int, token: str = "tok_ok"
) -> Order:
    def killed(**kwargs):
        raise _ProcessKilled

    with monkeypatch.context() as patch:
        patch.setattr(orders.services, "payment_charge", killed)
        with pytest.raises(_ProcessKilled):
            order_place(
                lines=[OrderLine(product_id=product.pk, quantity=quantity)], payment_token=token
            )
    order = Order.objects.latest("pk")
    Order.objects.filter(pk=order.pk).update(
        created_at=timezone.now() - timedelta(minutes=age_minutes)
    )
    return order


def test_a_stale_order_whose_replay_is_declined_is_released_through_the_ledger(
    product, monkeypatch
):
    """The replay is declined: the order fails, its stock comes back; fresh orders wait."""
    stale = _abandoned_order(product, monkeypatch, quantity=3, age_minutes=30, token="tok_decline")
    fresh = _abandoned_order(product, monkeypatch, quantity=2, age_minutes=1)
    product.refresh_from_db()
    assert product.stock == 5

    assert order_release_stale(older_than=timedelta(minutes=15)) == [stale.pk]

    product.refresh_from_db()
    assert product.stock == 8
    assert Order.objects.get(pk=stale.pk).status == Order.Status.PAYMENT_FAILED
    assert Order.objects.get(pk=fresh.pk).status == Order.Status.PENDING
    payment = Payment.objects.get(order=stale)
    assert (payment.status, payment.replay_token) == (Payment.Status.DECLINED, "")
    assert all(row.consistent for row in stock_audit())


def test_a_stale_order_whose_charge_went_through_is_paid_not_released(product, monkeypatch):
    """The replay finds (or makes) the charge: the customer paid, so the order is paid."""
    stale = _abandoned_order(product, monkeypatch, quantity=3, age_minutes=30)
    assert order_release_stale(older_than=timedelta(minutes=15)) == []
    assert Order.objects.get(pk=stale.pk).status == Order.Status.PAID
    assert Payment.objects.get(order=stale).status == Payment.Status.SUCCEEDED
    product.refresh_from_db()
    assert product.stock == 7


def test_a_stale_order_is_not_released_while_the_gateway_does_not_answer(
    product, monkeypatch, fake_gateway
):
    """No answer to the replay: the order stays pending with its stock, for the next run."""
    stale = _abandoned_order(product, monkeypatch, quantity=3, age_minutes=30)
    fake_gateway.control(mode="down")
    with override_settings(RETAIL_PAYMENT_GATEWAY_URL=fake_gateway.url):
        assert order_release_stale(older_than=timedelta(minutes=15)) == []
    assert Order.objects.get(pk=stale.pk).status == Order.Status.PENDING
    assert Payment.objects.get(order=stale).status == Payment.Status.UNKNOWN
    product.refresh_from_db()
    assert product.stock == 7


def test_an_order_without_a_payment_is_released_as_stale(product, monkeypatch):
    """An order left by an older version with no payment row: nothing can have been charged."""
    stale = _abandoned_order(product, monkeypatch, quantity=3, age_minutes=30)
    Payment.objects.filter(order=stale).delete()
    assert order_release_stale(older_than=timedelta(minutes=15)) == [stale.pk]
    assert product.movements.filter(reason="stale_release", order=stale).get().delta == 3
    assert all(row.consistent for row in stock_audit())


def test_running_again_settles_nothing_twice(product, monkeypatch):
    """A second run (cron overlap) finds nothing left to do."""
    _abandoned_order(product, monkeypatch, quantity=3, age_minutes=30, token="tok_decline")
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
    stale = _abandoned_order(product, monkeypatch, quantity=1, age_minutes=90, token="tok_decline")
    out = StringIO()
    call_command("release_stale_orders", "--older-than-minutes", "60", stdout=out)
    assert out.getvalue() == f"Released 1 stale order(s).\n  order #{stale.pk}\n"


def test_command_refuses_a_threshold_below_one_minute():
    """A zero threshold would race live checkouts: it is a usage error."""
    with pytest.raises(CommandError):
        call_command("release_stale_orders", "--older-than-minutes", "0")


def test_a_charge_that_succeeds_for_a_released_order_is_refunded_at_once(product, monkeypatch):
    """Stock already back on sale: the money goes back too, and the refund is on record."""
    stale = _abandoned_order(product, monkeypatch, quantity=2, age_minutes=30)
    # An order failed by something else while its charge stayed open (an older version's
    # sweeper did exactly this).
    orders.services.order_fail(order=stale, reason="stale_release")
    call_command("reconcile_payments", "--older-than-seconds", "0", stdout=StringIO())
    stale.refresh_from_db()
    assert stale.status == Order.Status.PAYMENT_FAILED
    assert Payment.objects.get(order=stale).status == Payment.Status.SUCCEEDED
    refund = Refund.objects.get(order=stale)
    assert (refund.status, refund.reason) == (Refund.Status.SUCCEEDED, Refund.Reason.RELEASED)
    assert refund.amount == Decimal("6.00") and refund.created_by is None
    product.refresh_from_db()
    assert product.stock == 10
    assert all(row.consistent for row in stock_audit())
