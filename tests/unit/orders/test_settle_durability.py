"""The settle survives a database connection lost while the gateway was answering (finding 2)."""

from decimal import Decimal

import pytest
from django.db import OperationalError, connection

import orders.services
from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.models import Order
from orders.services import OrderLine, order_place
from payments.models import Payment


@pytest.mark.django_db(transaction=True)
def test_a_connection_terminated_between_charge_and_settle_is_retried_on_a_fresh_one(
    monkeypatch,
):
    """pg_terminate_backend after the charge: the settle reconnects; the order is paid."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (the PostgreSQL tier runs it): SQLite has no server")
    product = product_create(sku="DROP-1", name="Drop", price=Decimal("5.00"), stock=3)
    real_charge = orders.services.payment_charge

    def charge_then_lose_the_connection(**kwargs):
        payment = real_charge(**kwargs)
        with connection.cursor() as cursor:
            try:
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            except OperationalError:
                pass
        return payment

    monkeypatch.setattr(orders.services, "payment_charge", charge_then_lose_the_connection)
    placed = order_place(
        lines=[OrderLine(product_id=product.pk, quantity=2)], payment_token="tok_ok"
    )
    assert placed.order.status == Order.Status.PAID
    assert Order.objects.get().status == Order.Status.PAID
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED
    assert all(row.consistent for row in stock_audit())
