"""HTTP as browsers and curl see it: CSP, no caching of staff data, HEAD/OPTIONS, 413, 415."""

import gzip
import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig
from django.test import RequestFactory

from retail.exceptions import bad_request
from retail.models import Metric
from retail.security import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.django_db(transaction=True)

STAFF_PAGES = ["/metrics/dashboard/", "/metrics/quality-scenarios/", "/metrics/errors/"]
MACHINE = ["/metrics/api/", "/metrics/prometheus"]


@pytest.fixture
def staff_client(client):
    client.force_login(
        get_user_model().objects.create_user("boss", password="pw-unused-77", is_staff=True)
    )
    return client


def assert_json_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == code


@pytest.mark.parametrize("url", ["/metrics/dashboard/", "/admin/"])
def test_html_pages_carry_a_csp_without_remote_origins(staff_client, url):
    """Every HTML page says where it may load from: this site only, no inline code."""
    response = staff_client.get(url)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert not re.search(r"https?:|\*|'unsafe-inline'|'unsafe-eval'", policy)


def test_staff_pages_use_no_inline_style_or_script(staff_client):
    """The CSP forbids inline styles and scripts: one stylesheet, no style=, and scripts
    only from /static/ (or data: JSON that never runs)."""
    import re

    Metric.objects.create(metric_type="avg_response_time", value=5, metadata={"status_code": 200})
    for url in STAFF_PAGES:
        page = staff_client.get(url).content.decode()
        assert "style=" not in page and "<style" not in page
        for tag in re.findall(r"<script[^>]*>", page):
            assert 'src="/static/' in tag or 'type="application/json"' in tag, tag
        assert '<link rel="stylesheet" href="/static/retail/staff.css">' in page


def test_the_stylesheet_is_served_by_the_app(client):
    """WhiteNoise serves static files: the admin's CSS and the staff pages' CSS answer 200."""
    for url in ("/static/admin/css/base.css", "/static/retail/staff.css"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("text/css")


@pytest.mark.parametrize("url", [*STAFF_PAGES, *MACHINE])
def test_staff_data_is_never_cached(staff_client, url):
    """Staff pages, /metrics/api/ and the scrape answer Cache-Control: no-store."""
    response = staff_client.get(url)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


@pytest.mark.parametrize("url", [*STAFF_PAGES, *MACHINE])
def test_head_answers_where_get_does(staff_client, url):
    """HEAD gets GET's status and headers without a body."""
    get, head = staff_client.get(url), staff_client.head(url)
    assert head.status_code == get.status_code == 200
    assert head["Content-Type"] == get["Content-Type"]
    assert head.content == b""


@pytest.mark.parametrize("method", ["options", "post", "put", "delete"])
@pytest.mark.parametrize("url", [*STAFF_PAGES, *MACHINE])
def test_other_methods_answer_json_405_naming_get_and_head(staff_client, url, method):
    """OPTIONS and writes answer SPEC's JSON 405 with Allow: GET, HEAD."""
    response = getattr(staff_client, method)(url)
    assert_json_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET, HEAD"


def test_a_body_over_the_upload_limit_answers_413(client, settings):
    """A body past DATA_UPLOAD_MAX_MEMORY_SIZE answers a JSON 413, not 400."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"items": [], "payment_token": "x" * 2000})
    response = client.post("/api/orders/", body, content_type="application/json")
    assert_json_error(response, 413, "payload_too_large")
    small = client.post("/api/orders/", "{}", content_type="application/json")
    assert small.status_code == 400


def test_the_default_upload_limit_answers_413():
    """Django's default limit (2.5 MB) holds for checkout too."""
    from django.test import Client

    body = json.dumps({"items": [], "payment_token": "x" * (3 * 1024 * 1024)})
    response = Client().post("/api/orders/", body, content_type="application/json")
    assert_json_error(response, 413, "payload_too_large")


def test_django_refusing_a_large_body_answers_413():
    """RequestDataTooBig raised by Django itself is a 413 too."""
    request = RequestFactory().post("/admin/login/")
    assert bad_request(request, RequestDataTooBig("too big")).status_code == 413
    assert bad_request(request, None).status_code == 400


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", "deflate", "br", "gzip, identity"])
def test_a_compressed_body_answers_415(client, encoding):
    """A Content-Encoding the API does not decode answers a JSON 415."""
    body = gzip.compress(json.dumps({"items": [], "payment_token": "tok_ok"}).encode())
    response = client.post(
        "/api/orders/", body, content_type="application/json", HTTP_CONTENT_ENCODING=encoding
    )
    assert_json_error(response, 415, "unsupported_media_type")


def test_identity_encoding_is_read_as_usual(client):
    """Content-Encoding: identity is no encoding at all."""
    response = client.post(
        "/api/orders/", "{}", content_type="application/json", HTTP_CONTENT_ENCODING="identity"
    )
    assert_json_error(response, 400, "invalid_request")
