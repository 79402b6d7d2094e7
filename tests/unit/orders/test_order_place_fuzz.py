"""Property: whatever JSON arrives at POST /api/orders/, the answer is a 4xx JSON or an order,
and stock never goes negative nor moves on a refusal."""

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from catalog.models import Product

pytestmark = pytest.mark.django_db

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_any_json = st.recursive(
    _json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _bodies(product_ids: list[int]) -> st.SearchStrategy:
    """Random JSON, near-valid bodies with wrong pieces, and valid orders of real products."""
    quantity = st.one_of(st.integers(min_value=-3, max_value=12), _json_scalars)
    product_id = st.one_of(st.sampled_from(product_ids), st.integers(0, 10**6), _json_scalars)
    line = st.fixed_dictionaries({"product_id": product_id, "quantity": quantity})
    token = st.one_of(st.sampled_from(["tok_ok", "tok_decline"]), _json_scalars)
    near_valid = st.fixed_dictionaries(
        {"items": st.one_of(st.lists(line, max_size=4), _any_json), "payment_token": token}
    )
    valid_lines = st.lists(
        st.fixed_dictionaries(
            {"product_id": st.sampled_from(product_ids), "quantity": st.integers(1, 6)}
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda line: line["product_id"],
    )
    valid = st.fixed_dictionaries(
        {"items": valid_lines, "payment_token": st.sampled_from(["tok_ok", "tok_decline"])}
    )
    return st.one_of(valid, near_valid, _any_json)


@pytest.fixture
def catalog(db):
    return [
        Product.objects.create(sku=f"P-{n}", name=f"P{n}", price=Decimal("3.50"), stock=stock)
        for n, stock in enumerate([40, 2, 0, 60], start=1)
    ]


def _stock() -> dict[int, int]:
    return dict(Product.objects.values_list("pk", "stock"))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_body_answers_4xx_json_or_an_order(client, catalog, data):
    """Random bodies never crash checkout nor corrupt stock."""
    body = data.draw(_bodies([product.pk for product in catalog]))
    before = _stock()
    response = client.post("/api/orders/", json.dumps(body), content_type="application/json")
    after = _stock()
    event(f"status {response.status_code}")
    assert response["Content-Type"].startswith("application/json")
    data = response.json()
    assert all(stock >= 0 for stock in after.values())
    if response.status_code == 201:
        assert data["status"] == "paid"
        taken = {item["product_id"]: item["quantity"] for item in data["items"]}
        assert after == {pk: stock - taken.get(pk, 0) for pk, stock in before.items()}
    else:
        assert 400 <= response.status_code < 500, response.content
        assert "error" in data and "detail" in data
        assert after == before
