"""Request IDs: generated, validated, returned on every response, never leaking between requests."""

import asyncio
import json
import re
import threading
import uuid

import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import AsyncRequestFactory, Client
from rest_framework.response import Response

from catalog.apis import ProductDetailApi
from retail.context import get_request_id
from retail.middleware import ObservabilityMiddleware, request_id_from
from retail.tracing import traceparent_parse

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

pytestmark = pytest.mark.django_db


def _records(request_id: str) -> list[dict]:
    """Return the JSON records of one request from the session's application.log."""
    path = settings.RETAIL_LOG_DIR / "application.log"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [record for record in map(json.loads, lines) if record["request_id"] == request_id]


def _is_uuid4(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_a_request_without_an_id_gets_a_fresh_uuid4(client):
    """Without X-Request-ID the response carries a new UUID4, different per request."""
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz")["X-Request-ID"]
    assert _is_uuid4(first) and _is_uuid4(second) and first != second


@pytest.mark.parametrize("inbound", ["abc-123", "a" * 128, "trace:1.2_3-X", "0"])
def test_a_valid_inbound_id_is_kept(client, inbound):
    """An inbound ID matching ^[A-Za-z0-9._:-]{1,128}$ is echoed and logged as is."""
    response = client.get("/api/products/999999/", headers={"X-Request-ID": inbound})
    assert response["X-Request-ID"] == inbound
    assert response.json()["request_id"] == inbound
    events = [record["event"] for record in _records(inbound)]
    assert events[-2:] == ["http.request", "http.response"]


MALFORMED = {
    "too long": "a" * 129,
    "newline": "evil\ninjected",
    "carriage return": "evil\rinjected",
    "quote": 'evil"injected',
    "space": "evil injected",
    "non-ascii": "evil-injécted",
    "html": "<script>injected</script>",
    "empty": "",
}


@pytest.mark.parametrize("inbound", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_inbound_id_is_replaced_and_never_logged(client, inbound):
    """Anything else is replaced by a fresh UUID4 and the raw value appears in no log line."""
    marker = uuid.uuid4().hex
    raw = inbound.replace("injected", marker) if inbound else inbound
    response = client.get("/healthz", headers={"X-Request-ID": raw})
    assert _is_uuid4(response["X-Request-ID"])
    assert response["X-Request-ID"] != raw
    # A request that is logged as well: the raw value must not reach application.log.
    client.get("/api/products/999999/", headers={"X-Request-ID": raw})
    assert marker not in (settings.RETAIL_LOG_DIR / "application.log").read_text("utf-8")


def test_pure_functions_validate_ids_and_traceparents():
    """request_id_from keeps valid IDs only; traceparent_parse accepts only valid W3C headers."""
    assert request_id_from("ok-1") == "ok-1"
    generated = [request_id_from(None) for _ in range(2000)]
    assert all(map(_is_uuid4, generated)) and len(set(generated)) == 2000
    assert _is_uuid4(request_id_from("ok\n"))  # `$` would let a trailing newline through
    valid = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    assert traceparent_parse(valid) == (TRACE_ID, "00f067aa0ba902b7")
    for invalid in (
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",  # version ff is forbidden
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01",  # uppercase hex
        f"00-{TRACE_ID}-00f067aa0ba902b7",  # no flags
        "garbage",
        "",
    ):
        assert traceparent_parse(invalid) is None, invalid


def test_a_valid_traceparent_is_continued_and_a_request_without_one_starts_a_trace(client):
    """The caller's trace id is logged on the request's records; without one (or with an
    invalid one) each request gets a fresh trace id of its own."""
    headers = {"X-Request-ID": "traced-1", "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
    client.get("/api/products/999999/", headers=headers)
    records = _records("traced-1")
    assert records and all(record["trace_id"] == TRACE_ID for record in records)
    client.get("/api/products/999999/", headers={"X-Request-ID": "untraced-1"})
    bad = {"X-Request-ID": "untraced-2", "traceparent": f"00-{'0' * 32}-00f067aa0ba902b7-01"}
    client.get("/api/products/999999/", headers=bad)
    started = [{r["trace_id"] for r in _records(rid)} for rid in ("untraced-1", "untraced-2")]
    assert all(len(ids) == 1 for ids in started)
    fresh = [ids.pop() for ids in started]
    assert fresh[0] != fresh[1] and TRACE_ID not in fresh
    assert all(re.fullmatch("[0-9a-f]{32}", trace_id) for trace_id in fresh)


def test_no_request_id_outside_a_request(client):
    """After the response the ID is unbound: code outside a request sees None."""
    client.get("/healthz", headers={"X-Request-ID": "bound-then-gone"})
    assert get_request_id() is None


def test_interleaved_requests_in_threads_keep_their_own_ids(monkeypatch):
    """Eight requests in flight at once: every record carries the ID of its own request."""
    clients = 8
    barrier = threading.Barrier(clients, timeout=10)
    recorded: list[tuple] = []
    monkeypatch.setattr("retail.middleware.record_metric", lambda *args: recorded.append(args))

    def view(self, request, product_id):
        import logging

        log = logging.getLogger("catalog.apis")
        client_no = request.headers["X-Client"]
        log.info("view.before", extra={"event": "view.before", "client_no": client_no})
        barrier.wait()  # all requests are inside the view now
        log.info("view.after", extra={"event": "view.after", "client_no": client_no})
        return Response({"client": client_no, "seen": get_request_id()})

    monkeypatch.setattr(ProductDetailApi, "get", view)
    answers: dict[str, tuple[str, dict]] = {}

    def call(number: int) -> None:
        response = Client().get("/api/products/1/", headers={"X-Client": str(number)})
        answers[str(number)] = (response["X-Request-ID"], response.json())

    threads = [threading.Thread(target=call, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(answers) == clients
    assert len({request_id for request_id, _ in answers.values()}) == clients
    for client_no, (request_id, body) in answers.items():
        assert body["seen"] == request_id
        records = _records(request_id)
        assert [record["event"] for record in records] == [
            "http.request",
            "view.before",
            "view.after",
            "http.response",
        ]
        assert all(r["client_no"] == client_no for r in records if r["event"].startswith("view"))
    assert len(recorded) == clients


def test_concurrent_async_requests_keep_their_own_ids():
    """The async path binds the ID per task: gathered requests never see each other's ID."""

    async def view(request):
        await asyncio.sleep(0)  # let the other tasks run in between
        return HttpResponse(get_request_id() or "")

    middleware = ObservabilityMiddleware(view)
    factory = AsyncRequestFactory()

    async def run():
        requests = [
            factory.get("/healthz", headers={"X-Request-ID": f"task-{n}"}) for n in range(20)
        ]
        return await asyncio.gather(*(middleware(request) for request in requests))

    responses = asyncio.run(run())
    assert [r.content.decode() for r in responses] == [f"task-{n}" for n in range(20)]
    assert [r["X-Request-ID"] for r in responses] == [f"task-{n}" for n in range(20)]
    assert get_request_id() is None


def test_a_500_carries_the_id_in_header_and_json_body(monkeypatch):
    """An unhandled exception answers SPEC's JSON 500 with the request ID in header and body."""

    def boom(self, request, product_id):
        raise RuntimeError("boom in view")

    monkeypatch.setattr(ProductDetailApi, "get", boom)
    monkeypatch.setattr("retail.middleware.record_metric", lambda *args: None)
    response = Client(raise_request_exception=False).get(
        "/api/products/1/", headers={"X-Request-ID": "five-hundred"}
    )
    assert response.status_code == 500
    assert response["X-Request-ID"] == "five-hundred"
    body = response.json()
    assert body["error"] == "internal_error" and body["request_id"] == "five-hundred"
    assert "boom" not in response.content.decode()


def test_a_response_made_after_another_middleware_raised_carries_the_id(monkeypatch):
    """A later middleware's exception becomes a JSON 500 that still carries X-Request-ID."""

    def broken(self, request):
        raise RuntimeError("middleware broke")

    monkeypatch.setattr("django.middleware.common.CommonMiddleware.process_request", broken)
    monkeypatch.setattr("retail.middleware.record_metric", lambda *args: None)
    response = Client(raise_request_exception=False).get(
        "/healthz", headers={"X-Request-ID": "mw-raised"}
    )
    assert response.status_code == 500
    assert response["X-Request-ID"] == "mw-raised"
    assert response.json()["request_id"] == "mw-raised"
