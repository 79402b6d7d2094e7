"""`manage.py seed_demo`: the demo catalog and the flash-sale product."""

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product

pytestmark = pytest.mark.django_db


def test_seeds_catalog_and_flash_product():
    """At least 5 products with stock >= 100, and FLASH-001 with the default stock 50."""
    call_command("seed_demo", stdout=None)
    regular = Product.objects.exclude(sku="FLASH-001")
    assert regular.count() >= 5
    assert all(product.stock >= 100 for product in regular)
    assert Product.objects.get(sku="FLASH-001").stock == 50


def test_rerun_resets_flash_stock_and_keeps_the_catalog():
    """Re-running is idempotent and resets FLASH-001 to N."""
    call_command("seed_demo", flash_stock=7)
    count = Product.objects.count()
    Product.objects.filter(sku="FLASH-001").update(stock=0)
    Product.objects.filter(sku="TEE-001").update(stock=250)
    call_command("seed_demo", flash_stock=12)
    assert Product.objects.count() == count
    assert Product.objects.get(sku="FLASH-001").stock == 12
    assert Product.objects.get(sku="TEE-001").stock == 250


def test_negative_flash_stock_is_a_usage_error():
    """A negative --flash-stock is refused."""
    with pytest.raises(CommandError):
        call_command("seed_demo", flash_stock=-1)
