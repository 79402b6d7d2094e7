"""OpenTelemetry export: spans reach a real OTLP/HTTP receiver with the logged trace ids."""

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import override_settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from catalog.services import product_create
from retail import tracing

pytestmark = pytest.mark.django_db

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps every ExportTraceServiceRequest it is sent."""

    protocol_version = "HTTP/1.1"
    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args) -> None:
        """Quiet."""


@pytest.fixture
def otlp_receiver(monkeypatch) -> Iterator[list[ExportTraceServiceRequest]]:
    handler = type("Receiver", (_Receiver,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}"
    )
    tracing._provider.cache_clear()
    try:
        yield handler.received
    finally:
        if tracing._provider.cache_info().currsize:
            tracing._provider().shutdown()
        tracing._provider.cache_clear()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _spans(received: list[ExportTraceServiceRequest]) -> list:
    return [
        span
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


def _log_lines(name: str, request_id: str) -> list[dict]:
    path = settings.RETAIL_LOG_DIR / name
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    return [line for line in lines if line.get("request_id") == request_id]


def test_a_checkout_exports_its_request_and_gateway_spans_with_the_logged_ids(
    client, otlp_receiver, fake_gateway
):
    """The server span continues the caller's trace; the gateway call is its child; the
    log lines of both services carry the same trace id, the gateway's the call's span."""
    product = product_create(sku="OTEL-1", name="Otel", price=Decimal("3.00"), stock=5)
    body = {"items": [{"product_id": product.pk, "quantity": 1}], "payment_token": "tok_ok"}
    headers = {"X-Request-ID": "otel-1", "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    with override_settings(RETAIL_PAYMENT_GATEWAY_URL=fake_gateway.url):
        response = client.post(
            "/api/orders/", body, content_type="application/json", headers=headers
        )
    assert response.status_code == 201
    tracing.flush_spans()

    spans = {span.name: span for span in _spans(otlp_receiver)}
    server, call = spans["POST /api/orders/"], spans["POST /charges"]
    assert server.trace_id.hex() == call.trace_id.hex() == TRACE_ID
    assert server.parent_span_id.hex() == PARENT_ID
    assert call.parent_span_id == server.span_id
    assert server.kind == server.SPAN_KIND_SERVER and call.kind == call.SPAN_KIND_CLIENT
    backend = _log_lines("application.log", "otel-1")
    assert backend and {line["trace_id"] for line in backend} == {TRACE_ID}
    [gateway] = [
        line for line in _log_lines("gateway.log", "otel-1") if line["event"] == "gateway.charge"
    ]
    assert (gateway["service"], gateway["trace_id"]) == ("gateway", TRACE_ID)
    assert gateway["parent_span_id"] == call.span_id.hex()


def test_without_the_endpoint_no_opentelemetry_runs(client):
    """Unset, requests still get trace ids, and no exporter is ever set up."""
    tracing._provider.cache_clear()
    assert not tracing.otel_enabled()
    client.get("/api/products/", headers={"X-Request-ID": "no-otel"})
    assert tracing._provider.cache_info().currsize == 0
    assert _log_lines("application.log", "no-otel")[0]["trace_id"]
