"""Reads of the product catalog."""

from django.db.models import QuerySet
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
