"""Writes of stock: the one guarded path through which stock changes."""

from decimal import Decimal

from django.db import transaction
from django.db.models import F

from catalog.models import Product


def product_stock_decrement(*, product_id: int, quantity: int) -> bool:
    """Take `quantity` from stock if, and only if, that much is there; return whether it was.

    One conditional UPDATE decides and writes at once: there is no read-then-write window
    in which two buyers can both see the last unit.
    """
    updated = Product.objects.filter(pk=product_id, stock__gte=quantity).update(
        stock=F("stock") - quantity
    )
    return updated == 1


def product_stock_increment(*, product_id: int, quantity: int) -> None:
    """Give `quantity` back to stock (a failed payment, a refund)."""
    Product.objects.filter(pk=product_id).update(stock=F("stock") + quantity)


def product_stock_set(*, product: Product, stock: int) -> Product:
    """Set a product's stock to an absolute level (seeding, admin adjustment)."""
    Product.objects.filter(pk=product.pk).update(stock=stock)
    product.refresh_from_db(fields=["stock"])
    return product


FLASH_SALE_SKU = "FLASH-001"
DEMO_MIN_STOCK = 100
_DEMO_CATALOG = [
    ("TEE-001", "Organic cotton T-shirt", "19.90"),
    ("MUG-001", "Enamel camp mug", "12.50"),
    ("BAG-001", "Canvas tote bag", "24.00"),
    ("CAP-001", "Six-panel cap", "17.00"),
    ("SOCK-001", "Merino socks", "14.90"),
    ("BOTTLE-001", "Steel water bottle", "29.00"),
]


def catalog_seed(*, flash_stock: int) -> list[Product]:
    """Create the demo catalog and reset the flash-sale product's stock to `flash_stock`.

    Safe to re-run: demo products are topped up to at least 100 and never reduced.
    """
    products = []
    with transaction.atomic():
        for sku, name, price in _DEMO_CATALOG:
            product, _ = Product.objects.get_or_create(
                sku=sku, defaults={"name": name, "price": Decimal(price)}
            )
            if product.stock < DEMO_MIN_STOCK:
                product = product_stock_set(product=product, stock=DEMO_MIN_STOCK)
            products.append(product)
        flash, _ = Product.objects.get_or_create(
            sku=FLASH_SALE_SKU, defaults={"name": "Flash-sale sneakers", "price": Decimal("59.00")}
        )
        products.append(product_stock_set(product=flash, stock=flash_stock))
    return products
