"""Staff metrics pages: access control, the API equals the core, Prometheus parses."""

import pytest
from django.contrib.auth import get_user_model

from retail import selectors
from retail.models import Metric
from retailctl.core.metrics import metrics_summary

PAGES = ["/metrics/dashboard/", "/metrics/quality-scenarios/"]
LIVE_PAGES = [
    "/metrics/live/",
    "/metrics/stream/",
    "/metrics/errors/",
    "/metrics/requests/req-abc/",
]
MACHINE = ["/metrics/api/?days=7", "/metrics/prometheus"]

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def traffic():
    Metric.objects.create(
        metric_type="avg_response_time",
        value=20.0,
        metadata={"path": "/api/x/", "status_code": 200},
    )
    Metric.objects.create(
        metric_type="avg_response_time",
        value=80.0,
        metadata={"path": "/api/y/", "status_code": 503},
    )
    Metric.objects.create(
        metric_type="error_rate", value=1, metadata={"path": "/api/y/", "status_code": 503}
    )
    Metric.objects.create(
        metric_type="circuit_breaker_state", value=1, metadata={"from": "closed", "to": "open"}
    )


@pytest.mark.parametrize("url", [*PAGES, *LIVE_PAGES])
def test_pages_redirect_anonymous_to_login_and_refuse_non_staff(client, url):
    """Anonymous users are sent to the login page; non-staff never see data, nor a stream."""
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    user = get_user_model().objects.create_user("shopper", password="pw-unused-77")
    client.force_login(user)
    answer = client.get(url)
    assert answer.status_code in (302, 403)
    assert not answer.get("Content-Type", "").startswith("text/event-stream")


@pytest.mark.parametrize("url", MACHINE)
def test_machine_endpoints_need_staff_or_the_bearer_token(client, settings, url):
    """/metrics/api/ and /metrics/prometheus answer 401 without credentials, 200 with the token."""
    settings.RETAIL_METRICS_TOKEN = "s3cret-token"
    assert client.get(url).status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get(url, HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    settings.RETAIL_METRICS_TOKEN = None
    assert client.get(url, HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 401


def test_dashboard_and_scenarios_render_for_staff(staff_client, traffic):
    """The dashboard shows KPI cards, health, an inline SVG chart; scenarios show verdicts."""
    page = staff_client.get("/metrics/dashboard/").content.decode()
    for text in ("Error rate", "Payment breaker", "<svg", "Errors, last 1h", "/api/y/", "open"):
        assert text in page
    assert "http://" not in page and "https://" not in page  # no CDN
    scenarios = staff_client.get("/metrics/quality-scenarios/").content.decode()
    assert "A1" in scenarios and "A2" in scenarios and "no data" in scenarios


def test_api_equals_the_core_document(staff_client, traffic):
    """/metrics/api/?days=7 answers what retailctl's core computes (window end aside)."""
    # First the core, then the API: the API request records its own metrics afterwards.
    with selectors._engine().connect() as conn:
        expected = metrics_summary(conn, days=7).to_document()
    answer = staff_client.get("/metrics/api/?days=7").json()
    answer["window"].pop("end")
    expected["window"].pop("end")
    # The API adds the alert keys (alerts_firing, anomalies) to the CLI's document.
    assert {key: answer[key] for key in expected} == expected
    assert answer["kpis"]["requests_total"] == 2
    assert answer["kpis"]["error_rate"] == 50.0
    assert answer["kpis"]["circuit_breaker_state"] == "open"


def test_api_rejects_bad_days(staff_client):
    """days must be an integer from 1 to 3650."""
    assert staff_client.get("/metrics/api/?days=zero").status_code == 400
    assert staff_client.get("/metrics/api/?days=0").status_code == 400


@pytest.mark.parametrize("url", [*PAGES, "/metrics/api/"])
@pytest.mark.parametrize("days", ["%C2%B2", "%D9%A3", "3%C2%B9", "%EF%BC%97"])
def test_digits_other_than_ascii_are_bad_days_not_a_500(staff_client, url, days):
    """'²', Arabic-Indic '٣', full-width '７': str.isdigit() takes them; they answer 400 JSON."""
    response = staff_client.get(f"{url}?days={days}")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("url", [*PAGES, *MACHINE, "/metrics/live/", "/metrics/errors/"])
def test_every_page_answers_503_json_when_the_read_model_fails(staff_client, monkeypatch, url):
    """A read model that does not answer gives a JSON 503 on every page, never a traceback."""
    from sqlalchemy.exc import OperationalError

    def refuse():
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(selectors, "_engine", refuse)
    response = staff_client.get(url)
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


def test_an_unknown_breaker_state_is_not_shown_as_healthy(staff_client):
    """No recorded breaker change: the card says unknown, in no healthy colour."""
    page = staff_client.get("/metrics/dashboard/").content.decode()
    assert '<div class="value unknown">unknown</div>' in page
    Metric.objects.create(
        metric_type="circuit_breaker_state", value=0, metadata={"from": "open", "to": "closed"}
    )
    page = staff_client.get("/metrics/dashboard/").content.decode()
    assert '<div class="value ok">closed</div>' in page


@pytest.mark.parametrize("days", [1, 7, 30, 90])
def test_chart_labels_never_overlap(staff_client, days):
    """Date labels stay a label's width apart at any range, today's always shown."""
    import re

    page = staff_client.get(f"/metrics/dashboard/?days={days}").content.decode()
    start = page.index('<svg class="chart"')
    chart = page[start : page.index("</svg>", start)]
    dates = [
        (float(x), text)
        for x, text in re.findall(
            r'<text x="([\d.]+)" y="\d+" text-anchor="middle">(\d\d-\d\d)<', chart
        )
    ]
    assert dates, chart
    gaps = [b[0] - a[0] for a, b in zip(dates, dates[1:], strict=False)]
    assert all(gap >= 72 for gap in gaps), gaps
    assert len(re.findall(r"<rect ", chart)) == days
    assert dates[-1][1] == page.split("→ ")[1][5:10]
