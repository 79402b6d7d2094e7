"""The live dashboard's pages: ranges, the stream and its cap, errors, a request (staff only:
test_views)."""

import json
import threading

import pytest
from typer.testing import CliRunner

from retail import live
from retail.models import Metric
from retailctl.cli import app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_streams(monkeypatch):
    """Each test starts with no open stream and a worker that is not stopping."""
    monkeypatch.setattr(live, "_closing", threading.Event())
    monkeypatch.setattr(live, "_streams", set())
    monkeypatch.setattr(live, "_threads", 8)
    monkeypatch.setattr(live, "_poller", None)
    yield
    live.streams_end()
    if live._poller is not None:
        live._poller.join(10)


@pytest.mark.parametrize("url", ["/metrics/dashboard/", "/metrics/live/", "/metrics/stream/"])
@pytest.mark.parametrize("query", ["range=5m", "range=soon", "range=7d&resolution=minute"])
def test_a_bad_range_is_a_json_400(staff_client, url, query):
    """A range outside 15m-30d, or minute points over a week: 400 with SPEC's error body."""
    answer = staff_client.get(f"{url}?{query}")
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_request" and body["detail"]


def test_the_dashboard_embeds_its_document_and_the_script(staff_client):
    """Charts are drawn from the embedded JSON by a script of the site's own."""
    Metric.objects.create(
        metric_type="error_rate",
        value=1,
        metadata={"route": "api/orders/", "status_code": 503, "request_id": "req-xyz"},
    )
    page = staff_client.get("/metrics/dashboard/?range=15m").content.decode()
    assert '<script id="live-data" type="application/json">' in page
    assert "/static/retail/live.js" in page
    assert 'href="/metrics/requests/req-xyz/"' in page
    assert 'data-stream-url="/metrics/stream/?range=15m&amp;resolution=minute"' in page
    for chart in ("requests", "errors", "latency", "orders", "breaker"):
        assert f'id="chart-{chart}"' in page and f'data-table="{chart}"' in page


def test_live_answers_a_delta_since_a_time(staff_client):
    """The polling fallback answers only what changed since `since`."""
    whole = staff_client.get("/metrics/live/?range=1h").json()
    assert len(whole["points"]) == 61 and whole["range"] == "1h"
    delta = staff_client.get("/metrics/live/", {"range": "1h", "since": whole["end"]}).json()
    assert 1 <= len(delta["points"]) <= 2
    assert set(delta) >= {"points", "breaker", "errors", "alerts_firing", "end"}


def test_the_stream_sends_events_then_ends_when_the_worker_stops(staff_client):
    """text/event-stream, never cached nor buffered; a retry delay and a delta first."""
    answer = staff_client.get("/metrics/stream/?range=15m", HTTP_LAST_EVENT_ID="2026-01-01T00:00Z")
    assert answer.status_code == 200
    assert answer["Content-Type"] == "text/event-stream"
    assert "no-store" in answer["Cache-Control"] and answer["X-Accel-Buffering"] == "no"
    chunks = iter(answer.streaming_content)
    first = next(chunks).decode()
    assert first.startswith("retry: 3000\n\nid: ") and "\nevent: delta\ndata: {" in first
    document = json.loads(first.split("data: ", 1)[1])
    # Last-Event-ID older than the range: the delta is the range (and the late rows' margin).
    assert 15 <= len(document["points"]) <= 17
    assert live.stream_count() == 1
    live.streams_end()
    rest: list[bytes] = []
    reader = threading.Thread(target=lambda: rest.extend(chunks), daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "the stream went on after the worker stopped"
    assert all(chunk.startswith(b"id: ") for chunk in rest)  # a delta already queued
    assert live.stream_count() == 0
    answer.close()


def test_over_the_cap_the_stream_is_refused_with_retry_after(staff_client, monkeypatch):
    """Past RETAIL_LIVE_STREAMS a worker answers 503 at once: the page polls instead."""
    monkeypatch.setenv("RETAIL_LIVE_STREAMS", "1")
    first = staff_client.get("/metrics/stream/")
    assert first.status_code == 200
    refused = staff_client.get("/metrics/stream/")
    assert refused.status_code == 503 and refused["Retry-After"] == "30"
    assert refused.json()["error"] == "streams_full"
    first.close()  # the page went away, without reading a byte
    assert live.stream_count() == 0
    again = staff_client.get("/metrics/stream/")
    assert again.status_code == 200
    again.close()


def test_one_thread_serves_no_stream(monkeypatch):
    """A worker with one thread (sync-like) never streams: a stream would take it whole."""
    monkeypatch.delenv("RETAIL_LIVE_STREAMS", raising=False)
    live.threads_set(1)
    assert live.capacity() == 0
    live.threads_set(16)
    assert live.capacity() == 8


def test_the_poller_fans_one_read_out_to_every_stream(monkeypatch):
    """Three open streams of one resolution: one read per poll, the same event to each."""
    reads = []
    done = threading.Event()

    def delta(*, since, now, resolution):
        reads.append(resolution)
        done.set()
        return {"points": [], "n": len(reads)}

    streams = [live.stream_open("minute", delta) for _ in range(3)]
    assert all(streams)
    assert done.wait(10)
    events = [stream.events.get(timeout=10) for stream in streams]
    assert len(set(events)) == 1 and '"n":1' in events[0]
    assert reads == ["minute"]


def test_a_failed_poll_is_retried_from_the_same_time_and_logged_once(monkeypatch, caplog):
    """The database away for two polls: the streams stay open, the next good poll covers
    the gap (same `since`), and the outage is one log line, not one per poll."""
    monkeypatch.setattr(live, "POLL_SECONDS", {"minute": 0.05, "hour": 0.05})
    calls = []

    def delta(*, since, now, resolution):
        calls.append(since)
        if len(calls) <= 2:
            raise ConnectionError("database went away")
        return {"points": [], "n": len(calls)}

    stream = live.stream_open("minute", delta)
    assert stream is not None
    event = stream.events.get(timeout=10)
    assert '"n":3' in event
    assert calls[0] == calls[1] == calls[2]
    failures = [
        r for r in caplog.records if r.getMessage().startswith("live dashboard poll failed")
    ]
    assert len(failures) == 1
    assert any(r.getMessage() == "live dashboard poll answers again" for r in caplog.records)


def test_errors_page_links_each_group_to_its_sample_request(staff_client):
    """/metrics/errors/ lists the groups; the sample request opens the request page."""
    Metric.objects.create(
        metric_type="error_rate",
        value=1,
        metadata={
            "route": "api/orders/",
            "status_code": 409,
            "error": "out_of_stock",
            "fingerprint": "fp-409",
            "request_id": "req-409",
        },
    )
    page = staff_client.get("/metrics/errors/").content.decode()
    assert "out_of_stock" in page and "fp-409" in page
    assert 'href="/metrics/requests/req-409/"' in page


def test_the_request_page_shows_the_lines_retailctl_trace_shows(staff_client, settings, tmp_path):
    """Both services' lines of one request, oldest first, as `retailctl trace` prints them."""
    lines = {
        "application.log": [
            {"timestamp": "2026-12-03T10:00:00.100Z", "level": "INFO", "logger": "retail.http",
             "message": "http.request", "event": "http.request", "request_id": "req-7",
             "method": "POST", "path": "/api/orders/"},
            {"timestamp": "2026-12-03T10:00:00.900Z", "level": "ERROR", "logger": "retail.http",
             "message": "http.response", "event": "http.response", "request_id": "req-7",
             "status_code": 503, "fingerprint": "fp-1"},
            {"timestamp": "2026-12-03T10:00:00.500Z", "level": "INFO", "logger": "retail.http",
             "message": "http.request", "event": "http.request", "request_id": "req-8"},
        ],
        "gateway.log": [
            {"timestamp": "2026-12-03T10:00:00.400Z", "level": "WARNING", "logger": "gateway",
             "message": "charge refused", "event": "gateway.charge", "request_id": "req-7",
             "service": "gateway", "outcome": "failed"},
        ],
    }  # fmt: skip
    for name, records in lines.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in records))
    settings.RETAIL_LOG_DIR = tmp_path
    page = staff_client.get("/metrics/requests/req-7/").content.decode()
    cli = CliRunner().invoke(app, ["trace", "req-7", "--log-dir", str(tmp_path), "--json"])
    traced = [json.loads(line) for line in cli.output.splitlines()]
    assert [r["timestamp"][11:23] for r in traced] == [
        "10:00:00.100",
        "10:00:00.400",
        "10:00:00.900",
    ]
    positions = [page.index(f"2026-12-03 {r['timestamp'][11:23]}") for r in traced]
    assert positions == sorted(positions)
    for text in ("gateway", "charge refused", "outcome=failed", "status_code=503", "+800.0 ms"):
        assert text in page
    assert "req-8" not in page and "10:00:00.500" not in page
    missing = staff_client.get("/metrics/requests/req-none/")
    assert missing.status_code == 404 and b"No log line" in missing.content
    assert staff_client.get("/metrics/requests/bad%20id/").status_code == 404
