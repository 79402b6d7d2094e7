"""Fixtures of the order tests: a small catalog and a staff user with a DRF token."""

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from catalog.models import Product


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
