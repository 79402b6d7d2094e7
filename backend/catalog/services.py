"""Writes of stock: the one guarded path through which stock changes, and its ledger.

Every change is one statement that decides and writes at once (a conditional UPDATE)
plus one `StockMovement` row in the same transaction, so `stock == sum(movements)`
holds for every product at every commit.
"""

from decimal import Decimal

from django.db import transaction
from django.db.models import F

from catalog.models import Product, StockMovement


def _movement_record(*, product_id: int, delta: int, reason: str, order_id: int | None) -> None:
    StockMovement.objects.create(
        product_id=product_id, delta=delta, reason=reason, order_id=order_id
    )


def product_stock_decrement(
    *,
    product_id: int,
    quantity: int,
    order_id: int | None = None,
    reason: str = StockMovement.Reason.SALE,
) -> bool:
    """Take `quantity` from stock if, and only if, that much is there; return whether it was.

    One conditional UPDATE decides and writes at once: there is no read-then-write window
    in which two buyers can both see the last unit.
    """
    with transaction.atomic(savepoint=False):
        updated = Product.objects.filter(pk=product_id, stock__gte=quantity).update(
            stock=F("stock") - quantity
        )
        if updated != 1:
            return False
        _movement_record(product_id=product_id, delta=-quantity, reason=reason, order_id=order_id)
    return True


def product_stock_increment(
    *, product_id: int, quantity: int, reason: str, order_id: int | None = None
) -> None:
    """Give `quantity` back to stock (a failed payment, a stale order, a refund)."""
    with transaction.atomic(savepoint=False):
        Product.objects.filter(pk=product_id).update(stock=F("stock") + quantity)
        _movement_record(product_id=product_id, delta=quantity, reason=reason, order_id=order_id)


def product_stock_set(
    *, product: Product, stock: int, reason: str = StockMovement.Reason.ADJUSTMENT
) -> Product:
    """Set a product's stock to an absolute level (seeding, admin adjustment).

    The row is locked while the difference is computed, so a concurrent sale is either
    fully before or fully after the adjustment and the ledger delta is exact.
    """
    with transaction.atomic():
        current = Product.objects.select_for_update().values_list("stock", flat=True)
        delta = stock - current.get(pk=product.pk)
        if delta:
            Product.objects.filter(pk=product.pk).update(stock=stock)
            _movement_record(product_id=product.pk, delta=delta, reason=reason, order_id=None)
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


def product_create(*, sku: str, name: str, price: Decimal, stock: int = 0) -> Product:
    """Create a product; its opening stock is the ledger's first movement."""
    with transaction.atomic():
        product = Product.objects.create(sku=sku, name=name, price=price)
        if stock:
            product = product_stock_set(
                product=product, stock=stock, reason=StockMovement.Reason.SEED
            )
    return product


def catalog_seed(*, flash_stock: int) -> list[Product]:
    """Create the demo catalog and reset the flash-sale product's stock to `flash_stock`.

    Safe to re-run: demo products are topped up to at least 100 and never reduced.
    """
    products = []
    with transaction.atomic():
        for sku, name, price in _DEMO_CATALOG:
            product = Product.objects.filter(sku=sku).first() or product_create(
                sku=sku, name=name, price=Decimal(price)
            )
            if product.stock < DEMO_MIN_STOCK:
                product = product_stock_set(
                    product=product, stock=DEMO_MIN_STOCK, reason=StockMovement.Reason.SEED
                )
            products.append(product)
        flash = Product.objects.filter(sku=FLASH_SALE_SKU).first() or product_create(
            sku=FLASH_SALE_SKU, name="Flash-sale sneakers", price=Decimal("59.00")
        )
        products.append(
            product_stock_set(product=flash, stock=flash_stock, reason=StockMovement.Reason.SEED)
        )
    return products
