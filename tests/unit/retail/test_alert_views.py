"""The dashboard and /metrics/api/ show firing alerts and anomalies from the same core."""

from datetime import UTC, datetime, timedelta

import pytest

from retail import selectors
from retail.alerts import Alert
from retail.models import Metric

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def firing():
    now = datetime.now(UTC)
    return Alert.objects.create(
        rule="high_error_rate",
        state="firing",
        severity="warning",
        since=now - timedelta(minutes=7),
        last_value=12.5,
        summary="error_rate = 12.5 over 15m (> 5)",
        last_evaluated_at=now,
        outbox={"pending": ["slack"], "errors": {"slack": "HTTP 500 from hooks"}},
    )


def test_api_adds_firing_alerts_and_anomalies_to_the_spec_document(staff_client, firing):
    """/metrics/api/ keeps SPEC's keys and adds `alerts_firing` and `anomalies`."""
    Alert.objects.create(
        rule="calm",
        state="resolved",
        since=firing.since,
        summary="",
        last_evaluated_at=firing.since,
    )
    document = staff_client.get("/metrics/api/?days=1").json()
    assert {"window", "kpis", "daily"} <= set(document)
    (alert,) = document["alerts_firing"]
    assert (alert["rule"], alert["value"], alert["notifications_owed"]) == (
        "high_error_rate",
        12.5,
        ["slack"],
    )
    assert alert == selectors.alerts_firing_document()[0]
    assert document["anomalies"] == []


def test_dashboard_shows_the_alerts_section(staff_client, firing):
    """The dashboard lists the firing rule, its summary and what is still owed."""
    page = staff_client.get("/metrics/dashboard/").content.decode()
    assert "high_error_rate" in page and "error_rate = 12.5 over 15m (&gt; 5)" in page
    assert "not yet delivered to slack" in page
    assert "No hour stood out from its seasonal band." in page


def test_dashboard_says_when_nothing_fires(staff_client):
    """Without a firing rule the section says so."""
    Metric.objects.create(metric_type="avg_response_time", value=3.0, metadata={})
    page = staff_client.get("/metrics/dashboard/").content.decode()
    assert "Nothing firing" in page


def test_alert_rows_obey_the_state_constraint(firing):
    """The database refuses a state other than firing or resolved."""
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        Alert.objects.filter(pk=firing.pk).update(state="pending")
