"""The catalog API: listing and detail of products."""

from decimal import Decimal

import pytest

from catalog.models import Product

pytestmark = pytest.mark.django_db


@pytest.fixture
def tee(db) -> Product:
    return Product.objects.create(sku="TEE-1", name="Tee", price=Decimal("19.90"), stock=7)


def test_list_answers_every_product_with_price_as_decimal_string(client, tee):
    """GET /api/products/ lists id, sku, name, price (a decimal string) and stock."""
    Product.objects.create(sku="MUG-1", name="Mug", price=Decimal("5"), stock=0)
    response = client.get("/api/products/")
    assert response.status_code == 200
    assert response.json() == [
        {"id": tee.pk, "sku": "TEE-1", "name": "Tee", "price": "19.90", "stock": 7},
        {"id": tee.pk + 1, "sku": "MUG-1", "name": "Mug", "price": "5.00", "stock": 0},
    ]


def test_detail_answers_one_product(client, tee):
    """GET /api/products/<id>/ answers that product."""
    response = client.get(f"/api/products/{tee.pk}/")
    assert response.status_code == 200
    assert response.json()["sku"] == "TEE-1"


@pytest.mark.parametrize("product_id", ["999999", "99999999999999999999999"])
def test_unknown_product_answers_json_404(client, tee, product_id):
    """A missing product, even an id beyond any integer column, answers a JSON 404."""
    response = client.get(f"/api/products/{product_id}/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_write_methods_answer_json_405(client, tee):
    """The catalog is read-only over the API."""
    response = client.delete(f"/api/products/{tee.pk}/")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_stock_cannot_go_negative_in_the_database(tee):
    """The CHECK constraint refuses a negative stock even when code bypasses the services."""
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.filter(pk=tee.pk).update(stock=-1)


def test_sku_is_unique(tee):
    """Two products cannot share a SKU."""
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(sku="TEE-1", name="Again", price=Decimal("1"), stock=1)
