"""/metrics/prometheus: the text exposition format, parsed back by prometheus_client."""

import pytest
from django.contrib.auth import get_user_model
from prometheus_client.parser import text_string_to_metric_families

from retail.models import Metric

pytestmark = pytest.mark.django_db(transaction=True)


def test_prometheus_output_parses_and_counts_the_read_model(client):
    """Counters by status class, errors, breaker state and latency quantiles are exposed."""
    for status, value in ((200, 10.0), (200, 30.0), (404, 5.0)):
        Metric.objects.create(
            metric_type="avg_response_time",
            value=value,
            metadata={"path": "/p/", "status_code": status},
        )
    Metric.objects.create(metric_type="error_rate", value=1, metadata={"status_code": 404})
    Metric.objects.create(metric_type="stock_conflicts", value=1, metadata={})
    client.force_login(
        get_user_model().objects.create_user("ops", password="pw-77x", is_staff=True)
    )
    response = client.get("/metrics/prometheus")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }
    assert samples[("retail_http_requests_total", (("status_class", "2xx"),))] == 2
    assert samples[("retail_http_requests_total", (("status_class", "4xx"),))] == 1
    assert samples[("retail_http_errors_total", ())] == 1
    assert samples[("retail_stock_conflicts_total", ())] == 1
    assert samples[("retail_circuit_breaker_state", (("state", "closed"),))] == 1
    assert samples[("retail_circuit_breaker_state", (("state", "open"),))] == 0
    assert samples[("retail_response_time_ms", (("quantile", "0.99"),))] == pytest.approx(
        30, rel=0.01
    )
