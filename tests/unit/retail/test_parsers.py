"""The API's JSON parser: malformed bodies, however deep, are a 400 with the JSON error body."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "body", ["[" * 1000, "[" * 5000 + "]" * 5000, '{"items": ' * 3000 + "1" + "}" * 3000]
)
def test_json_nested_too_deep_is_a_400_not_a_500(client, body):
    """The decoder's RecursionError is a malformed body: 400 malformed_json, nothing placed."""
    response = client.post("/api/orders/", data=body, content_type="application/json")
    assert response.status_code == 400
    document = response.json()
    assert document["error"] == "malformed_json"
    assert document["detail"] == "JSON parse error - nested too deeply."
    assert document["request_id"] == response["X-Request-ID"]


def test_a_shallow_malformed_body_keeps_drfs_own_detail(client):
    """Any other malformed body answers as before."""
    response = client.post("/api/orders/", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error - Expecting property name")
