"""/metrics/prometheus: Prometheus' conventions, lifetime counters that prune never lowers."""

import shutil
import subprocess
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from retail import selectors
from retail.models import Metric
from retailctl.core.prune import metrics_prune

pytestmark = pytest.mark.django_db(transaction=True)

PROMTOOL = shutil.which("promtool")


@pytest.fixture
def staff_client(client):
    client.force_login(
        get_user_model().objects.create_user("ops", password="pw-77x", is_staff=True)
    )
    return client


def _metric(metric_type, value, metadata=None, *, days_ago=0):
    Metric.objects.create(
        metric_type=metric_type,
        value=value,
        metadata=metadata or {},
        recorded_at=timezone.now() - timedelta(days=days_ago),
    )


@pytest.fixture
def traffic():
    for days_ago in (0, 40):
        for status, ms in ((200, 3.0), (200, 30.0), (404, 300.0), (503, 4000.0)):
            _metric(
                "avg_response_time", ms, {"route": "r/", "status_code": status}, days_ago=days_ago
            )
        _metric("error_rate", 1, {"status_code": 404}, days_ago=days_ago)
        _metric("error_rate", 1, {"status_code": 503}, days_ago=days_ago)
        _metric("stock_conflicts", 1, days_ago=days_ago)
        _metric("throttled_requests", 1, days_ago=days_ago)
        _metric("payment_fast_fail", 2.0, {"reason": "circuit_open"}, days_ago=days_ago)


def _scrape(client) -> str:
    response = client.get("/metrics/prometheus")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.content.decode()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_counters_histogram_and_gauges(staff_client, traffic):
    """Lifetime counters by status class, a latency histogram in seconds, 0..1 gauges."""
    samples = _samples(_scrape(staff_client))
    requests = {
        labels[0][1]: v
        for (n, labels), v in samples.items()
        if n.startswith("retail_http_requests_total")
    }
    assert requests == {"2xx": 4, "3xx": 0, "4xx": 2, "5xx": 2}
    assert samples[("retail_http_errors_total", ())] == 4
    assert samples[("retail_stock_conflicts_total", ())] == 2
    assert samples[("retail_throttled_requests_total", ())] == 2
    assert samples[("retail_payment_fast_fails_total", ())] == 2
    assert samples[("retail_orders_paid_total", ())] == 0
    assert samples[("retail_refunds_total", ())] == 0
    bucket = "retail_http_request_duration_seconds_bucket"
    assert samples[(bucket, (("le", "0.005"),))] == 2
    assert samples[(bucket, (("le", "0.05"),))] == 4
    assert samples[(bucket, (("le", "0.5"),))] == 6
    assert samples[(bucket, (("le", "2.5"),))] == 6
    assert samples[(bucket, (("le", "5.0"),))] == 8
    assert samples[(bucket, (("le", "+Inf"),))] == 8
    assert samples[("retail_http_request_duration_seconds_count", ())] == 8
    assert samples[("retail_http_request_duration_seconds_sum", ())] == pytest.approx(2 * 4.333)
    assert samples[("retail_http_error_ratio", ())] == 0.5
    assert samples[("retail_scenario_pass", (("scenario", "A1"),))] == 1
    assert samples[("retail_scenario_pass", (("scenario", "A2"),))] == 1
    names = {name for name, _ in samples}
    assert not any("_ms" in name or "quantile" in name or "percent" in name for name in names)


def test_without_data_the_ratios_are_absent(staff_client):
    """No request and no payment today: no error ratio and no payment success ratio."""
    names = {name for name, _ in _samples(_scrape(staff_client))}
    assert "retail_http_error_ratio" not in names
    assert "retail_payment_success_ratio" not in names
    assert "retail_http_requests_total" in names


def test_an_unknown_breaker_state_is_not_shown_as_closed(staff_client):
    """No recorded breaker change: every state reads 0; a recorded change reads 1 for it."""
    samples = _samples(_scrape(staff_client))
    states = {"closed", "open", "half-open"}
    assert {s: samples[("retail_circuit_breaker_state", (("state", s),))] for s in states} == {
        s: 0 for s in states
    }
    _metric("circuit_breaker_state", 1, {"from": "closed", "to": "open"})
    samples = _samples(_scrape(staff_client))
    assert samples[("retail_circuit_breaker_state", (("state", "open"),))] == 1
    assert samples[("retail_circuit_breaker_state", (("state", "closed"),))] == 0


def test_scrape_prune_scrape_never_lowers_a_counter(staff_client, traffic):
    """After pruning every metric row, each *_total and the histogram are where they were."""
    before = _samples(_scrape(staff_client))
    with selectors.read_model() as conn:
        engine = conn.engine
    result = metrics_prune(engine, older_than_days=0, now=timezone.now() + timedelta(seconds=1))
    assert (result.deleted, Metric.objects.count()) == (18, 0)
    after = _samples(_scrape(staff_client))
    monotonic = [key for key in before if key[0].endswith(("_total", "_bucket", "_count", "_sum"))]
    assert len(monotonic) >= 20
    for key in monotonic:
        assert after[key] >= before[key], key
        assert after[key] == before[key], key  # no traffic in between: exactly equal


def test_scrapes_and_staff_pages_are_not_counted(staff_client):
    """A scrape, the dashboard, the schema and the probes add no metric row."""
    for path in ("/metrics/prometheus", "/metrics/dashboard/", "/metrics/api/", "/api/schema/"):
        staff_client.get(path)
    staff_client.get("/healthz")
    staff_client.get("/readyz")
    assert Metric.objects.count() == 0
    staff_client.get("/api/products/")
    assert Metric.objects.filter(metric_type="avg_response_time").count() == 1


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package prometheus)"
)
def test_promtool_check_metrics_reports_nothing(staff_client, traffic):
    """`promtool check metrics` finds no problem in a scrape with every family present."""
    _metric("circuit_breaker_state", 1, {"from": "open", "to": "half-open"})
    text = _scrape(staff_client)
    assert "retail_http_error_ratio" in text
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
