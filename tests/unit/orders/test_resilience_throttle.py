"""Checkout throttling: 429 with Retry-After past the rate, per user or per real client IP."""

import ipaddress
import logging
import threading
import uuid

import pytest
from django.core.cache import caches
from django.db import connections
from django.test import RequestFactory, override_settings
from rest_framework.request import Request

from orders.throttling import CheckoutRateThrottle, client_ip, rate_parse
from retail.models import Metric

# The throttle counts in fixed windows: its clock stands still inside one.
pytestmark = pytest.mark.usefixtures("throttle_clock_inside_one_window")


def _order(client, product, **extra):
    return client.post(
        "/api/orders/",
        {"items": [{"product_id": product.pk, "quantity": 1}], "payment_token": "tok_ok"},
        content_type="application/json",
        **extra,
    )


@pytest.mark.django_db
@override_settings(RETAIL_CHECKOUT_RATE="3/m")
def test_the_fourth_checkout_in_a_minute_is_throttled(client, products, caplog):
    """Past the rate the answer is 429 throttled with Retry-After, a metric row and a log line."""
    tee = products["TEE-1"]
    statuses = [_order(client, tee).status_code for _ in range(3)]
    with caplog.at_level(logging.INFO, logger="orders.throttling"):
        response = _order(client, tee)
    assert statuses == [201, 201, 201]
    assert response.status_code == 429
    assert response.json()["error"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 61
    [row] = Metric.objects.filter(metric_type="throttled_requests")
    assert row.metadata["client"] == "ip:127.0.0.1"
    throttle_lines = [r for r in caplog.records if r.name == "orders.throttling"]
    assert [(r.levelno, r.message) for r in throttle_lines] == [(logging.INFO, "throttle.rejected")]


@pytest.mark.django_db
@override_settings(RETAIL_CHECKOUT_RATE="1/m")
def test_clients_are_counted_apart(client, products):
    """Another address has its own budget."""
    tee = products["TEE-1"]
    assert _order(client, tee, REMOTE_ADDR="10.0.0.1").status_code == 201
    assert _order(client, tee, REMOTE_ADDR="10.0.0.1").status_code == 429
    assert _order(client, tee, REMOTE_ADDR="10.0.0.2").status_code == 201


@pytest.mark.django_db
@override_settings(RETAIL_CHECKOUT_RATE="1/m")
def test_an_authenticated_user_is_one_client_from_any_address(client, products, customer_token):
    """A signed-in user is throttled as one client, whatever address it comes from."""
    tee = products["TEE-1"]
    auth = {"HTTP_AUTHORIZATION": f"Token {customer_token}"}
    assert _order(client, tee, REMOTE_ADDR="10.0.0.1", **auth).status_code == 201
    assert _order(client, tee, REMOTE_ADDR="10.0.0.2", **auth).status_code == 429
    row = Metric.objects.get(metric_type="throttled_requests")
    assert row.metadata["client"].startswith("user:")


@pytest.mark.django_db
@override_settings(RETAIL_CHECKOUT_RATE="1/m")
def test_a_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(client, products):
    """Without a trusted proxy, rotating X-Forwarded-For does not buy more checkouts."""
    tee = products["TEE-1"]
    assert _order(client, tee, HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 201
    assert _order(client, tee, HTTP_X_FORWARDED_FOR="2.2.2.2").status_code == 429


def _request(remote: str, forwarded: str | None = None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().post("/api/orders/", REMOTE_ADDR=remote, **headers)


_PROXIES = [ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("192.0.2.7/32")]


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("203.0.113.9", "1.1.1.1", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.1.0.5", "198.51.100.4", "198.51.100.4"),  # one trusted proxy
        ("10.1.0.5", "6.6.6.6, 198.51.100.4", "198.51.100.4"),  # spoofed entry left of it
        ("10.1.0.5", "198.51.100.4, 192.0.2.7", "198.51.100.4"),  # two trusted hops
        ("10.1.0.5", "not-an-ip, 192.0.2.7", "192.0.2.7"),  # garbage: nearest known hop
        ("10.1.0.5", "", "10.1.0.5"),  # proxy sent no header
    ],
)
def test_client_ip_believes_forwarded_for_only_from_trusted_proxies(remote, forwarded, expected):
    """The client is the first address, from the right, that is not a trusted proxy."""
    with override_settings(RETAIL_TRUSTED_PROXIES=_PROXIES):
        assert client_ip(_request(remote, forwarded)) == expected


@pytest.mark.parametrize(
    ("rate", "parsed"), [("30/m", (30, 60)), ("5/s", (5, 1)), ("2/h", (2, 3600))]
)
def test_rate_parse(rate, parsed):
    """Rates are N per second, minute or hour."""
    assert rate_parse(rate) == parsed


def _hammer(limit: int, attempts: int) -> list[bool]:
    """Run `attempts` throttle checks of one client from as many threads at once."""
    start = threading.Barrier(attempts)
    results: list[bool] = []
    lock = threading.Lock()

    def one() -> None:
        request = Request(_request("198.51.100.77"))
        start.wait()
        allowed = CheckoutRateThrottle().allow_request(request, None)
        with lock:
            results.append(allowed)
        caches["default"].close()
        connections.close_all()

    threads = [threading.Thread(target=one) for _ in range(attempts)]
    with override_settings(RETAIL_CHECKOUT_RATE=f"{limit}/h"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_count_exactly_in_process_memory():
    """With the per-process cache, 40 simultaneous checks let exactly 15 through."""
    with override_settings(
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    ):
        results = _hammer(limit=15, attempts=40)
    assert (results.count(True), results.count(False)) == (15, 25)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_count_exactly_in_redis(redis_url):
    """With Redis, 40 simultaneous checks from separate connections let exactly 15 through."""
    redis_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url,
        "KEY_PREFIX": f"retail-test-{uuid.uuid4().hex[:8]}",
    }
    with override_settings(CACHES={"default": redis_cache}):
        results = _hammer(limit=15, attempts=40)
    assert (results.count(True), results.count(False)) == (15, 25)


@pytest.mark.django_db
@override_settings(RETAIL_CHECKOUT_RATE="1/m")
def test_only_checkouts_spend_the_budget(client, products):
    """A GET on the collection (405) does not use up the client's checkouts."""
    assert client.get("/api/orders/").status_code == 405
    assert _order(client, products["TEE-1"]).status_code == 201


@pytest.mark.django_db
@override_settings(RETAIL_CHECKOUT_RATE="1/h")
def test_retry_after_says_the_seconds_the_body_says(client, products):
    """The 429's Retry-After equals the wait stated in its detail (it said 17 beside 16)."""
    import re

    tee = products["TEE-1"]
    assert _order(client, tee).status_code == 201
    response = _order(client, tee)
    assert response.status_code == 429
    stated = re.fullmatch(
        r"Request was throttled\. Expected available in (\d+) seconds?\.",
        response.json()["detail"],
    )
    assert stated is not None, response.json()["detail"]
    assert response["Retry-After"] == stated.group(1)
