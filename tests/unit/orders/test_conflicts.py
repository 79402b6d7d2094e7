"""Oversell attempts rejected by the database guard answer 409 and leave nothing behind."""

from decimal import Decimal

import pytest
from django.db import OperationalError
from django.db.models import F

import orders.refunds
import orders.services
from catalog.exceptions import OutOfStock
from catalog.models import Product, StockMovement
from catalog.selectors import stock_audit
from catalog.services import product_create
from orders.models import Order
from orders.services import OrderLine, order_place
from payments.models import Payment
from retail.models import Metric

pytestmark = pytest.mark.django_db


class _TransientError(Exception):
    """Stands in for psycopg's DeadlockDetected: Django keeps it as `__cause__`."""

    sqlstate = "40P01"


@pytest.fixture
def flash() -> Product:
    return product_create(sku="FLASH-T", name="Flash", price=Decimal("10.00"), stock=5)


def _unguarded_decrement(*, product_id, quantity, **kwargs):
    """A buggy stock path without the `stock >= quantity` guard: only the CHECK stops it."""
    Product.objects.filter(pk=product_id).update(stock=F("stock") - quantity)
    return True


def _conflicts() -> list[dict]:
    rows = Metric.objects.filter(metric_type="stock_conflicts").order_by("id")
    return list(rows.values_list("metadata", flat=True))


def _nothing_left_behind(product: Product, stock: int) -> None:
    product.refresh_from_db()
    assert product.stock == stock
    assert not Order.objects.exists()
    assert not Payment.objects.exists()
    assert all(row.consistent for row in stock_audit())


def test_check_constraint_rejection_is_409_with_a_conflict_metric(flash, monkeypatch):
    """The CHECK constraint stopping an oversell gives out_of_stock and a stock_conflicts row."""
    monkeypatch.setattr(orders.services, "product_stock_decrement", _unguarded_decrement)
    with pytest.raises(OutOfStock) as raised:
        order_place(lines=[OrderLine(product_id=flash.pk, quantity=6)], payment_token="tok_ok")
    assert raised.value.detail["sku"] == "FLASH-T"
    [conflict] = _conflicts()
    assert conflict["product_id"] == flash.pk
    assert conflict["sku"] == "FLASH-T"
    assert conflict["error"] == "IntegrityError"
    assert conflict["retried"] is False
    _nothing_left_behind(flash, 5)


def test_check_constraint_rejection_over_http_is_json_409(client, flash, monkeypatch):
    """Over the API the conflict is a JSON 409 out_of_stock, never a 500."""
    monkeypatch.setattr(orders.services, "product_stock_decrement", _unguarded_decrement)
    response = client.post(
        "/api/orders/",
        {"items": [{"product_id": flash.pk, "quantity": 6}], "payment_token": "tok_ok"},
        content_type="application/json",
    )
    assert response.status_code == 409
    assert response.json()["error"] == "out_of_stock"
    _nothing_left_behind(flash, 5)


def _failing_then(real, failures: int):
    calls = {"n": 0}

    def decrement(**kwargs):
        calls["n"] += 1
        if calls["n"] <= failures:
            raise OperationalError("deadlock detected") from _TransientError()
        return real(**kwargs)

    return decrement


def test_transient_error_is_retried_once_and_the_order_goes_through(flash, monkeypatch):
    """A deadlock on the first attempt is retried; the second attempt sells."""
    real = orders.services.product_stock_decrement
    monkeypatch.setattr(orders.services, "product_stock_decrement", _failing_then(real, 1))
    placed = order_place(lines=[OrderLine(product_id=flash.pk, quantity=2)], payment_token="tok_ok")
    assert placed.order.status == Order.Status.PAID
    flash.refresh_from_db()
    assert flash.stock == 3
    assert Order.objects.count() == 1
    [conflict] = _conflicts()
    assert (conflict["attempt"], conflict["retried"]) == (1, True)
    assert all(row.consistent for row in stock_audit())


def test_transient_error_twice_answers_409(flash, monkeypatch):
    """When the retry fails too, the client gets out_of_stock and nothing changed."""
    real = orders.services.product_stock_decrement
    monkeypatch.setattr(orders.services, "product_stock_decrement", _failing_then(real, 2))
    with pytest.raises(OutOfStock):
        order_place(lines=[OrderLine(product_id=flash.pk, quantity=2)], payment_token="tok_ok")
    assert [(c["attempt"], c["retried"]) for c in _conflicts()] == [(1, True), (2, False)]
    _nothing_left_behind(flash, 5)


def test_a_plain_shortage_is_409_but_not_a_conflict(flash):
    """Not enough stock answers out_of_stock without recording a stock conflict."""
    with pytest.raises(OutOfStock):
        order_place(lines=[OrderLine(product_id=flash.pk, quantity=6)], payment_token="tok_ok")
    assert _conflicts() == []
    _nothing_left_behind(flash, 5)


def test_a_partial_multi_line_order_leaves_nothing_behind(flash):
    """If the second product is short, the first one's decrement is rolled back too."""
    other = product_create(sku="OTHER-T", name="Other", price=Decimal("1.00"), stock=1)
    lines = [OrderLine(product_id=flash.pk, quantity=2), OrderLine(product_id=other.pk, quantity=2)]
    with pytest.raises(OutOfStock):
        order_place(lines=lines, payment_token="tok_ok")
    _nothing_left_behind(flash, 5)
    assert not StockMovement.objects.filter(reason="sale").exists()


def test_every_outcome_keeps_the_ledger_consistent(flash):
    """Sales, declines and refunds all move stock through the ledger."""
    order_place(lines=[OrderLine(product_id=flash.pk, quantity=1)], payment_token="tok_decline")
    paid = order_place(lines=[OrderLine(product_id=flash.pk, quantity=2)], payment_token="tok_ok")
    orders.refunds.order_refund(order_id=paid.order.pk, actor=None)
    reasons = list(flash.movements.order_by("id").values_list("reason", "delta"))
    assert reasons == [
        ("seed", 5),
        ("sale", -1),
        ("payment_failed", 1),
        ("sale", -2),
        ("refund", 2),
    ]
    assert all(row.consistent for row in stock_audit())
