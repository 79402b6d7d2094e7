"""Fixtures of the order tests: a small catalog, a staff user with a DRF token, a still clock."""

import time
import types
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from catalog.models import Product
from orders import throttling


@pytest.fixture
def products(db) -> dict[str, Product]:
    """Three products with known prices and stock."""
    return {
        product.sku: product
        for product in (
            Product.objects.create(sku="TEE-1", name="Tee", price=Decimal("19.90"), stock=10),
            Product.objects.create(sku="MUG-1", name="Mug", price=Decimal("12.50"), stock=5),
            Product.objects.create(sku="LAST-1", name="Last one", price=Decimal("99.00"), stock=1),
        )
    }


@pytest.fixture
def staff_token(db) -> str:
    """The DRF token key of an active staff user."""
    user = get_user_model().objects.create_user("staff", password="unused-pass-9", is_staff=True)
    return Token.objects.create(user=user).key


@pytest.fixture
def customer_token(db) -> str:
    """The DRF token key of an active user who is not staff."""
    user = get_user_model().objects.create_user("customer", password="unused-pass-9")
    return Token.objects.create(user=user).key


@pytest.fixture
def stock_of():
    """Read a product's stock from the database."""

    def read(product: Product) -> int:
        return Product.objects.values_list("stock", flat=True).get(pk=product.pk)

    return read


@pytest.fixture
def throttle_clock_inside_one_window(monkeypatch) -> None:
    """Stop the throttle's clock 30 s into the current minute.

    The throttle counts in fixed windows: a test whose checkouts straddle a minute's end
    sees its count start again (one failed so in CI, its checkouts at 16:45:59.96-16:46:00.03).
    """
    now = time.time() // 60 * 60 + 30
    monkeypatch.setattr(throttling, "time", types.SimpleNamespace(time=lambda: now))
