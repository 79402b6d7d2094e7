"""JSON log lines and request metrics written by the observability middleware."""

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.authtoken.models import Token

from catalog.apis import ProductDetailApi
from catalog.models import Product
from retail import logging as retail_logging
from retail.context import request_id_var, trace_id_var
from retail.logging import (
    JsonFormatter,
    JsonLinesHandler,
    RequestIDFilter,
    StructuredLogger,
    log_event,
    log_fields,
)
from retail.models import Metric

pytestmark = pytest.mark.django_db

REQUIRED_KEYS = {"timestamp", "level", "logger", "message", "request_id"}


def _lines() -> list[str]:
    return (settings.RETAIL_LOG_DIR / "application.log").read_text("utf-8").splitlines()


def _records(request_id: str) -> list[dict]:
    return [r for r in map(json.loads, _lines()) if r["request_id"] == request_id]


@pytest.fixture
def product():
    return Product.objects.create(sku="OBS-1", name="Lamp", price="12.50", stock=5)


def test_every_line_of_application_log_is_json_with_the_required_keys(client, product):
    """After requests of every outcome each line parses and has SPEC's keys, time in UTC."""
    client.get(f"/api/products/{product.pk}/")
    client.get("/api/products/999999/")
    client.post("/api/orders/", data="{not json", content_type="application/json")
    logging.getLogger("some.third.party").warning("outside any request %s", "args")
    lines = _lines()
    assert len(lines) >= 7
    for line in lines:
        record = json.loads(line)
        assert REQUIRED_KEYS <= record.keys(), line
        stamp = datetime.fromisoformat(record["timestamp"])
        assert stamp.utcoffset() == UTC.utcoffset(None)
    last = json.loads(lines[-1])
    assert last["message"] == "outside any request args" and last["request_id"] is None


def test_request_and_response_records_carry_the_request_fields(client, product):
    """http.request then http.response, with route template, numeric duration, user and ip."""
    client.get(f"/api/products/{product.pk}/", headers={"X-Request-ID": "fields-1"})
    request, response = _records("fields-1")
    assert request["event"] == "http.request" and request["level"] == "INFO"
    assert request["method"] == "GET" and request["path"] == f"/api/products/{product.pk}/"
    assert request["ip"] == "127.0.0.1"
    assert response["event"] == "http.response" and response["level"] == "INFO"
    assert response["route"] == "api/products/<int:product_id>/"
    assert response["status_code"] == 200 and response["user_id"] is None
    assert isinstance(response["duration_ms"], float) and response["duration_ms"] > 0


def test_client_errors_are_warnings(client):
    """A 4xx response is logged at WARNING, once; Django's own "Not Found" record is not."""
    client.get("/api/products/999999/", headers={"X-Request-ID": "warn-1"})
    client.get("/no/such/page/", headers={"X-Request-ID": "warn-2"})
    for request_id in ("warn-1", "warn-2"):
        records = _records(request_id)
        assert [r["event"] for r in records] == ["http.request", "http.response"]
        assert records[1]["level"] == "WARNING" and records[1]["status_code"] == 404
    assert _records("warn-2")[1]["route"] == "<unmatched>"  # no URL pattern matched


def test_an_unhandled_exception_is_logged_exactly_once_with_its_traceback(monkeypatch):
    """One exception gives one ERROR record with exc_info, and the client the JSON 500."""

    def boom(self, request, product_id):
        raise RuntimeError("boom for the log")

    monkeypatch.setattr(ProductDetailApi, "get", boom)
    response = Client(raise_request_exception=False).get(
        "/api/products/1/", headers={"X-Request-ID": "error-once"}
    )
    assert response.status_code == 500 and response.json()["request_id"] == "error-once"
    records = _records("error-once")
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["event"] == "http.response" and errors[0]["status_code"] == 500
    assert "RuntimeError: boom for the log" in errors[0]["exc_info"]
    assert sum("boom for the log" in line for line in _lines()) == 1


def test_a_views_own_logger_carries_the_request_id(monkeypatch, product):
    """Records of the view's logger (and Django's) get the request ID stamped on."""
    original = ProductDetailApi.get

    def logged(self, request, product_id):
        logging.getLogger("catalog.apis").info("looking up %s", product_id)
        return original(self, request, product_id)

    monkeypatch.setattr(ProductDetailApi, "get", logged)
    Client().get(f"/api/products/{product.pk}/", headers={"X-Request-ID": "own-logger"})
    own = [r for r in _records("own-logger") if r["logger"] == "catalog.apis"]
    assert [r["message"] for r in own] == [f"looking up {product.pk}"]


def test_djangos_own_records_carry_the_request_id():
    """A record Django writes while handling the request (a disallowed Host) has its ID."""
    response = Client().get(
        "/api/products/", headers={"X-Request-ID": "bad-host", "Host": "evil.example"}
    )
    assert response.status_code == 400 and response["X-Request-ID"] == "bad-host"
    loggers = [r["logger"] for r in _records("bad-host")]
    assert "django.security.DisallowedHost" in loggers


def test_the_user_is_read_after_the_view_without_forcing_vary_cookie(client):
    """A DRF token user shows as user_id; reading it adds no session access (no Vary: Cookie)."""
    staff = get_user_model().objects.create_user("ops", password="unused-pw-1", is_staff=True)
    token = Token.objects.create(user=staff)
    response = client.post(
        "/api/orders/999999/refund/",
        data="{}",
        content_type="application/json",
        headers={"Authorization": f"Token {token.key}", "X-Request-ID": "user-1"},
    )
    assert response.status_code == 404
    assert "Cookie" not in response.get("Vary", "")
    assert _records("user-1")[-1]["user_id"] == staff.pk


def test_health_checks_are_neither_logged_nor_measured(client):
    """/healthz and /readyz get an X-Request-ID but no records and no metric rows."""
    for path in ("/healthz", "/readyz"):
        response = client.get(path, headers={"X-Request-ID": "probe-1"})
        assert response.status_code == 200 and response["X-Request-ID"] == "probe-1"
    assert _records("probe-1") == []
    assert Metric.objects.count() == 0


def test_the_kill_switch_keeps_only_the_request_id(settings, product):
    """RETAIL_OBSERVABILITY=off: no request records, no metrics, X-Request-ID still set."""
    settings.RETAIL_OBSERVABILITY = False
    response = Client().get("/api/products/999999/", headers={"X-Request-ID": "switched-off"})
    assert response.status_code == 404 and response["X-Request-ID"] == "switched-off"
    assert [r["event"] for r in _records("switched-off") if "event" in r] == []
    assert Metric.objects.count() == 0


def test_the_client_ip_can_be_left_out(settings):
    """RETAIL_LOG_CLIENT_IP off: no `ip` key in the request records."""
    settings.RETAIL_LOG_CLIENT_IP = False
    Client().get("/api/products/999999/", headers={"X-Request-ID": "no-ip"})
    records = _records("no-ip")
    assert records and all("ip" not in r for r in records)


def test_every_request_records_its_response_time_and_errors_their_class(client, product):
    """avg_response_time per request (method, route, path, status); error_rate for 4xx/5xx."""
    client.get(f"/api/products/{product.pk}/")
    client.get("/api/products/999999/")
    times = list(Metric.objects.filter(metric_type="avg_response_time").order_by("id"))
    assert len(times) == 2 and all(m.value > 0 for m in times)
    assert times[0].metadata == {
        "method": "GET",
        "route": "api/products/<int:product_id>/",
        "path": f"/api/products/{product.pk}/",
        "status_code": 200,
    }
    errors = list(Metric.objects.filter(metric_type="error_rate"))
    assert len(errors) == 1
    assert errors[0].metadata["status_class"] == "4xx" and errors[0].metadata["status_code"] == 404


def test_a_malformed_log_call_never_raises_into_the_caller(tmp_path, capsys):
    """A format string that does not match its arguments is reported on stderr, not raised."""
    handler = JsonLinesHandler(str(tmp_path / "application.log"), stdout=False, synchronous=True)
    handler.setFormatter(JsonFormatter())
    careless = logging.getLogger("careless.caller")
    careless.propagate = False  # pytest's own capture handler raises on such records
    careless.addHandler(handler)
    try:
        careless.warning("two values %s %s", "only one")
        careless.warning("fine %s", "afterwards")
    finally:
        careless.removeHandler(handler)
        handler.close()
    lines = (tmp_path / "application.log").read_text("utf-8").splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["fine afterwards"]
    assert "not enough arguments for format string" in capsys.readouterr().err


def test_log_event_writes_fields_as_top_level_keys():
    """log_event/StructuredLogger: event and fields at top level, no clobbered record keys."""
    log_event("order.placed", order_id=7, total="12.50")
    StructuredLogger("orders.services").warning("order.odd", name="clash", module="m")
    try:
        raise ValueError("bad thing")
    except ValueError:
        StructuredLogger("orders.services").exception("order.failed", order_id=8)
    placed, odd, failed = (json.loads(line) for line in _lines()[-3:])
    assert placed["event"] == "order.placed" and placed["order_id"] == 7
    assert placed["logger"] == "retail.events" and placed["level"] == "INFO"
    assert odd["logger"] == "orders.services" and odd["name_"] == "clash"
    assert odd["module_"] == "m" and odd["level"] == "WARNING"
    assert failed["level"] == "ERROR" and "ValueError: bad thing" in failed["exc_info"]


def test_event_records_are_the_records_logging_would_make(monkeypatch):
    """Where another handler listens, log_event hands logging makeRecord's own record."""
    made: list[logging.LogRecord] = []
    events = logging.getLogger("retail.events")
    monkeypatch.setattr(events, "handle", made.append)
    monkeypatch.setattr(logging.time, "time", lambda: 1764365305.123456)
    log_event("order.placed", level=logging.WARNING, order_id=7, total="12.50")
    fields = {"event": "order.placed", "order_id": 7, "total": "12.50"}
    expected = events.makeRecord(
        events.name, logging.WARNING, "", 0, "order.placed", None, None, extra=fields
    )
    [record] = made
    assert list(record.__dict__.items()) == list(expected.__dict__.items())


@contextmanager
def _without_pytest_handlers(logger: logging.Logger) -> Iterator[None]:
    """Detach pytest's handlers from `logger` for a while: production has none of them.

    pytest attaches its capture and reporting handlers to the root and to every
    non-propagating logger for each test phase, and detaches them after it.
    """
    attached = [h for h in logger.handlers if type(h).__module__ == "_pytest.logging"]
    for handler in attached:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in attached:
            logger.addHandler(handler)


@pytest.fixture
def sole_handler(tmp_path):
    """A logger whose records reach one JsonLinesHandler, configured as in production."""
    handler = JsonLinesHandler(str(tmp_path / "application.log"), stdout=False, synchronous=True)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIDFilter())
    logger = logging.getLogger("retail.test_sole_handler")
    logger.propagate = False
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    handler.close()


def _records_made(monkeypatch, logger: logging.Logger) -> list[logging.LogRecord]:
    made: list[logging.LogRecord] = []
    handle = logger.handle
    monkeypatch.setattr(logger, "handle", lambda record: made.append(record) or handle(record))
    return made


def test_a_sole_json_handler_gets_fields_and_writes_the_line_of_the_record(
    monkeypatch, sole_handler, tmp_path
):
    """No LogRecord is built for the production handler; its line is the record's line."""
    logger, handler = sole_handler
    with _without_pytest_handlers(logger):
        made = _records_made(monkeypatch, logger)
        monkeypatch.setattr(retail_logging.time, "time", lambda: 1764365305.123456)
        request_token = request_id_var.set("fields-path-1")
        trace_token = trace_id_var.set("4bf92f3577b34da6a3ce929d0e0e4736")
        try:
            log_fields(logger, logging.WARNING, {"event": "order.odd", "order_id": 7, "_hidden": 1})
            expected = logger.makeRecord(
                logger.name,
                logging.WARNING,
                "",
                0,
                "order.odd",
                None,
                None,
                extra={"event": "order.odd", "order_id": 7, "_hidden": 1},
            )
            RequestIDFilter().filter(expected)
        finally:
            trace_id_var.reset(trace_token)
            request_id_var.reset(request_token)
        expected.created = 1764365305.123456
        assert made == []
        [line] = (tmp_path / "application.log").read_text("utf-8").splitlines()
        assert line == JsonFormatter().format(expected)
        assert json.loads(line) == {
            "timestamp": "2025-11-28T21:28:25.123456+00:00",
            "level": "WARNING",
            "logger": "retail.test_sole_handler",
            "message": "order.odd",
            "event": "order.odd",
            "order_id": 7,
            "request_id": "fields-path-1",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        }


def test_records_are_built_as_usual_for_any_other_handler_filter_or_formatter(
    monkeypatch, sole_handler, tmp_path
):
    """A second handler, a logger filter, another handler filter or formatter: a LogRecord."""
    logger, handler = sole_handler
    with _without_pytest_handlers(logger):
        made = _records_made(monkeypatch, logger)
        second = logging.NullHandler()
        logger.addHandler(second)
        log_fields(logger, logging.INFO, {"event": "two.handlers"})
        logger.removeHandler(second)
        logger.addFilter(lambda record: True)
        log_fields(logger, logging.INFO, {"event": "logger.filter"})
        logger.filters.clear()
        odd_filter = logging.Filter()
        handler.addFilter(odd_filter)
        log_fields(logger, logging.INFO, {"event": "handler.filter"})
        handler.removeFilter(odd_filter)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log_fields(logger, logging.INFO, {"event": "plain.formatter"})
        handler.setFormatter(JsonFormatter())
        handler.filters.append(odd_filter)  # changed past the logging API, seen all the same
        log_fields(logger, logging.INFO, {"event": "filters.appended"})
        handler.filters.remove(odd_filter)
        log_fields(logger, logging.INFO, {"event": "sole.again"})
        assert [record.msg for record in made] == [
            "two.handlers",
            "logger.filter",
            "handler.filter",
            "plain.formatter",
            "filters.appended",
        ]
        lines = (tmp_path / "application.log").read_text("utf-8").splitlines()
        assert [line if line[0] != "{" else json.loads(line)["message"] for line in lines] == [
            "two.handlers",
            "logger.filter",
            "handler.filter",
            "plain.formatter",
            "filters.appended",
            "sole.again",
        ]


def test_fields_waiting_in_the_buffer_follow_a_formatter_change(sole_handler, tmp_path):
    """Fields queued for a JsonFormatter are written as a record by whatever formats later."""
    logger, handler = sole_handler
    with _without_pytest_handlers(logger):
        handler.synchronous = False
        log_fields(logger, logging.INFO, {"event": "queued.fields", "order_id": 3})
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s %(order_id)s"))
        handler.flush()
        assert (tmp_path / "application.log").read_text("utf-8") == "INFO queued.fields 3\n"


def test_requests_log_through_the_fields_path_in_the_production_configuration(
    monkeypatch, client, product
):
    """With only the settings' handler on the root, the middleware builds no LogRecord."""
    with _without_pytest_handlers(logging.getLogger()):
        made = _records_made(monkeypatch, logging.getLogger("retail.http"))
        response = client.get(f"/api/products/{product.pk}/", HTTP_X_REQUEST_ID="fields-path-2")
        assert response.status_code == 200 and made == []
        request, response_record = _records("fields-path-2")
        assert request["event"] == "http.request" and request["logger"] == "retail.http"
        assert response_record["event"] == "http.response" and response_record["status_code"] == 200
        assert list(response_record)[:6] == [
            "timestamp",
            "level",
            "logger",
            "message",
            "service",
            "event",
        ]
        assert response_record["service"] == "backend"


def test_a_nul_in_the_path_is_recorded_percent_encoded_and_every_row_written(monkeypatch):
    """`/api/x%00/` between two requests: its path is logged and stored as `/api/x%00/`, and
    the buffered rows of all three requests reach the database (jsonb refuses a raw NUL)."""
    from retail import metrics as retail_metrics

    buffer = retail_metrics.MetricBuffer(flush_interval=60)
    monkeypatch.setattr(retail_metrics, "_buffer", buffer)
    retail_metrics.set_synchronous_metrics(False)
    try:
        client = Client()
        statuses = [
            client.get(path, headers={"X-Request-ID": f"nul-{n}"}).status_code
            for n, path in enumerate(["/api/products/", "/api/x%00/", "/api/products/999999/"])
        ]
        assert buffer.flush() is True
    finally:
        retail_metrics.set_synchronous_metrics(True)
        buffer.close()
    assert statuses == [200, 404, 404]
    rows = list(Metric.objects.order_by("id").values_list("metric_type", "metadata"))
    assert [kind for kind, _ in rows] == [
        "avg_response_time",
        "avg_response_time",
        "error_rate",
        "avg_response_time",
        "error_rate",
    ]
    assert rows[1][1]["path"] == rows[2][1]["path"] == "/api/x%00/"
    assert rows[1][1]["route"] == "<unmatched>"
    logged = [r for r in _records("nul-1") if r.get("event") in ("http.request", "http.response")]
    assert [r["path"] for r in logged] == ["/api/x%00/", "/api/x%00/"]


def test_control_characters_in_a_path_are_percent_encoded_and_the_rest_kept(client):
    """Escapes and C1 controls are encoded as the client sent them; other text stays."""
    client.get("/api/caf%C3%A9/%1B%5B2J%C2%9B/", headers={"X-Request-ID": "ctl-1"})
    [response] = [r for r in _records("ctl-1") if r.get("event") == "http.response"]
    assert response["path"] == "/api/café/%1B[2J%C2%9B/"


@pytest.mark.django_db(transaction=True)
def test_unmatched_paths_share_one_route_and_one_rollup_key():
    """50 distinct unknown paths: route `<unmatched>` on the line and the rows, one rollup key,
    and "Top error routes" shows `<unmatched>`, never the client's text (SPEC §3.6)."""
    from retail import selectors
    from retail.rollups import MetricRollup

    client = Client()
    for n in range(50):
        client.get(f"/no-such-{n}/\x1b[31mred/", headers={"X-Request-ID": f"unmatched-{n}"})
    [response] = [r for r in _records("unmatched-7") if r.get("event") == "http.response"]
    assert response["route"] == "<unmatched>" and response["status_code"] == 404
    keys = set(MetricRollup.objects.values_list("metric_type", "route"))
    assert keys == {("avg_response_time", "<unmatched>"), ("error_rate", "<unmatched>")}
    report = selectors.metrics_report(days=1)
    assert [(r.route, r.errors) for r in report.error_routes] == [("<unmatched>", 50)]
