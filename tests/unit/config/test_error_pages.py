"""Error answers outside the API views are JSON too: 404, 405 on probes, 500, schema."""

import pytest
from django.urls import path

from config.urls import handler404, handler500  # noqa: F401 - this module is a URLconf too
from config.urls import urlpatterns as config_urlpatterns

pytestmark = pytest.mark.django_db


def _boom(request):
    raise RuntimeError("kaboom")


urlpatterns = [path("boom/", _boom), *config_urlpatterns]


def test_unknown_url_answers_json_404_without_echoing_the_path(client):
    """An unknown URL answers a JSON 404 that does not repeat the path."""
    response = client.get("/nope/<script>")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not_found"
    assert b"script" not in response.content


@pytest.mark.urls(__name__)
def test_unhandled_exception_answers_json_500_with_request_id(client):
    """A crash answers SPEC's JSON 500 body with the request ID, never a traceback."""
    client.raise_request_exception = False
    response = client.get("/boom/")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert body["request_id"] == response["X-Request-ID"]
    assert b"kaboom" not in response.content
    assert b"Traceback" not in response.content


def test_healthz_answers_without_the_database(client, django_assert_num_queries):
    """GET /healthz answers 200 and runs no query."""
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_200_when_the_database_answers(client):
    """GET /readyz answers 200 when the database answers."""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_503_when_the_database_does_not(client, monkeypatch):
    """GET /readyz answers 503 with a JSON error when a query fails."""
    from django.db import DatabaseError, connection

    def refuse(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


def test_probes_refuse_writes_with_json_405(client):
    """POST on a probe answers a JSON 405 naming the allowed methods."""
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json()["error"] == "method_not_allowed"


def test_openapi_schema_is_published(client):
    """GET /api/schema/ answers the OpenAPI document naming the order endpoints."""
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "/api/orders/" in schema["paths"]
    assert "/api/orders/{order_id}/refund/" in schema["paths"]


def test_every_404_says_the_same_in_the_same_json_spacing(client):
    """An unknown URL and an unknown object answer one detail, written as compactly as DRF."""
    unknown_url = client.get("/nope/", headers={"X-Request-ID": "nf-1"})
    unknown_object = client.get("/api/products/999999/", headers={"X-Request-ID": "nf-2"})
    assert unknown_url.content == b'{"error":"not_found","detail":"Not found.","request_id":"nf-1"}'
    assert (
        unknown_object.content == b'{"error":"not_found","detail":"Not found.","request_id":"nf-2"}'
    )
