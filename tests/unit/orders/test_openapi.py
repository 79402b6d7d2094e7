"""The served OpenAPI schema documents what the API answers (schemathesis checks it live)."""

import json

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_checkout_documents_every_answer_and_a_strict_body(schema):
    """Every status checkout answers is documented; the body schema refuses what the API does."""
    operation = schema["paths"]["/api/orders/"]["post"]
    assert set(operation["responses"]) == {
        "201", "202", "400", "402", "404", "409", "413", "415", "429", "503",
    }  # fmt: skip
    for status in ("202", "429", "503"):
        assert "Retry-After" in operation["responses"][status]["headers"]
    assert set(operation["responses"]["202"]["links"]) == {"ReadOrder", "RefundOrder"}
    body = schema["components"]["schemas"]["OrderPlaceInput"]
    assert body["additionalProperties"] is False
    assert (body["properties"]["items"]["minItems"], body["properties"]["items"]["maxItems"]) == (
        1,
        50,
    )
    assert body["properties"]["payment_token"]["minLength"] == 1
    placed = schema["components"]["schemas"]["OrderPlacedOutput"]
    assert "access_token" in placed["required"]
    assert set(schema["components"]["schemas"]["ErrorOutput"]["required"]) == {
        "error",
        "detail",
        "request_id",
    }


@pytest.mark.usefixtures("throttle_clock_inside_one_window")
def test_a_throttled_checkout_answers_as_documented(client, products):
    """429: the documented error body, and a Retry-After in whole seconds."""
    body = {"items": [{"product_id": products["TEE-1"].pk, "quantity": 1}], "payment_token": "t"}
    with override_settings(RETAIL_CHECKOUT_RATE="1/m"):
        first = client.post("/api/orders/", body, content_type="application/json")
        throttled = client.post("/api/orders/", body, content_type="application/json")
    assert first.status_code == 201
    assert throttled.status_code == 429
    assert set(throttled.json()) == {"error", "detail", "request_id"}
    assert throttled.json()["error"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= 60
