"""`release_stale_orders`: a pending order whose payment never resolved gives its stock back."""

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

import orders.services
from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.models import Order
from orders.services import OrderLine, order_place, order_release_stale
from payments.models import Payment

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
