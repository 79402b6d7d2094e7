"""Reads of the product catalog."""

from dataclasses import dataclass

from django.db.models import QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from catalog.models import Product


def product_list() -> QuerySet[Product]:
    """Return every product, in id order."""
    return Product.objects.order_by("id")


def product_get(*, product_id: int) -> Product:
    """Return one product or raise Http404."""
    return get_object_or_404(Product, pk=product_id)


def product_prices(*, product_ids: list[int]) -> dict[int, Product]:
    """Return the named products by id; missing ids are simply absent."""
    return Product.objects.in_bulk(product_ids)


@dataclass(frozen=True)
class StockAuditRow:
    product_id: int
    sku: str
    stock: int
    ledger_total: int

    @property
    def consistent(self) -> bool:
        return self.stock >= 0 and self.stock == self.ledger_total


def stock_audit() -> list[StockAuditRow]:
    """Return every product's stock beside the sum of its ledger movements."""
    rows = Product.objects.annotate(
        ledger_total=Coalesce(Sum("movements__delta"), Value(0))
    ).values_list("pk", "sku", "stock", "ledger_total")
    return [StockAuditRow(*row) for row in rows.order_by("pk")]
