"""The stock ledger: every stock change writes one movement in its own transaction."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from catalog.models import Product, StockMovement
from catalog.selectors import stock_audit
from catalog.services import (
    catalog_seed,
    product_create,
    product_stock_decrement,
    product_stock_increment,
    product_stock_set,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def product() -> Product:
    return product_create(sku="LEDGER-1", name="Ledger", price=Decimal("5.00"), stock=10)


def _movements(product: Product) -> list[tuple[int, str, int | None]]:
    return list(product.movements.order_by("id").values_list("delta", "reason", "order_id"))


def test_creating_a_product_opens_its_ledger(product):
    """A new product's opening stock is its first movement, reason seed."""
    assert _movements(product) == [(10, "seed", None)]


def test_decrement_writes_a_sale_movement(product):
    """A successful decrement takes the stock and writes a negative sale movement."""
    assert product_stock_decrement(product_id=product.pk, quantity=3) is True
    product.refresh_from_db()
    assert product.stock == 7
    assert _movements(product)[-1] == (-3, "sale", None)


def test_refused_decrement_writes_nothing(product):
    """Asking for more than is in stock changes neither the stock nor the ledger."""
    assert product_stock_decrement(product_id=product.pk, quantity=11) is False
    product.refresh_from_db()
    assert product.stock == 10
    assert _movements(product) == [(10, "seed", None)]


def test_increment_writes_a_movement_with_its_reason(product):
    """Giving stock back records why."""
    product_stock_increment(product_id=product.pk, quantity=2, reason="refund")
    product.refresh_from_db()
    assert product.stock == 12
    assert _movements(product)[-1] == (2, "refund", None)


def test_set_writes_the_difference_and_nothing_when_unchanged(product):
    """An absolute adjustment records the exact delta; a no-op records nothing."""
    product_stock_set(product=product, stock=4)
    product_stock_set(product=product, stock=4)
    assert product.stock == 4
    assert _movements(product)[-1] == (-6, "adjustment", None)
    assert len(_movements(product)) == 2


def test_seeding_twice_keeps_every_product_consistent():
    """After seeding (and re-seeding) stock equals the sum of movements everywhere."""
    catalog_seed(flash_stock=50)
    catalog_seed(flash_stock=20)
    audit = stock_audit()
    assert len(audit) >= 6
    assert all(row.consistent for row in audit), audit
    flash = next(row for row in audit if row.sku == "FLASH-001")
    assert (flash.stock, flash.ledger_total) == (20, 20)


def test_the_check_constraint_rejects_negative_stock(product):
    """Even an unguarded UPDATE cannot take stock below zero: the database refuses it."""
    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(stock=F("stock") - 11)
    product.refresh_from_db()
    assert product.stock == 10


def test_a_movement_cannot_be_zero(product):
    """A zero delta is refused by the database: the ledger records changes only."""
    with pytest.raises(IntegrityError), transaction.atomic():
        StockMovement.objects.create(product=product, delta=0, reason="adjustment")


def test_audit_flags_a_change_made_outside_the_services(product):
    """A stock write that bypasses the ledger shows up as inconsistent."""
    Product.objects.filter(pk=product.pk).update(stock=9)
    row = next(row for row in stock_audit() if row.product_id == product.pk)
    assert (row.stock, row.ledger_total, row.consistent) == (9, 10, False)


def test_an_admin_adjustment_goes_through_the_ledger(client, product):
    """Setting stock in the admin records the difference as an adjustment movement."""
    from django.contrib.auth import get_user_model

    admin_user = get_user_model().objects.create_superuser("boss", password="unused-pass-9")
    client.force_login(admin_user)
    response = client.post(
        f"/admin/catalog/product/{product.pk}/change/",
        {"sku": product.sku, "name": product.name, "price": "5.00", "set_stock": "25"},
    )
    assert response.status_code == 302
    product.refresh_from_db()
    assert product.stock == 25
    assert _movements(product)[-1] == (15, "adjustment", None)
    assert all(row.consistent for row in stock_audit())


def test_editing_a_product_in_the_admin_never_writes_stale_stock(client, product):
    """A sale made while the admin form was open survives the form's save."""
    from django.contrib.auth import get_user_model

    admin_user = get_user_model().objects.create_superuser("boss", password="unused-pass-9")
    client.force_login(admin_user)
    assert client.get(f"/admin/catalog/product/{product.pk}/change/").status_code == 200
    product_stock_decrement(product_id=product.pk, quantity=4)
    response = client.post(
        f"/admin/catalog/product/{product.pk}/change/",
        {"sku": product.sku, "name": "Renamed", "price": "6.00", "set_stock": ""},
    )
    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.name, product.stock) == ("Renamed", 6)
    assert all(row.consistent for row in stock_audit())


@pytest.mark.parametrize(
    ("initial", "expected_movements"), [("40", [(40, "adjustment", None)]), ("", [])]
)
def test_a_product_added_in_the_admin_opens_its_ledger(client, initial, expected_movements):
    """A new product's initial stock is the ledger's first movement; none, no movement."""
    from django.contrib.auth import get_user_model

    admin_user = get_user_model().objects.create_superuser("boss", password="unused-pass-9")
    client.force_login(admin_user)
    response = client.post(
        "/admin/catalog/product/add/",
        {"sku": "NEW-1", "name": "New lamp", "price": "8.00", "set_stock": initial},
    )
    assert response.status_code == 302
    created = Product.objects.get(sku="NEW-1")
    assert created.stock == (int(initial) if initial else 0)
    assert _movements(created) == expected_movements
    assert all(row.consistent for row in stock_audit())
