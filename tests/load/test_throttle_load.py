"""Throttling under real load: 4 gunicorn workers share one exact count through Redis."""

import json
import time

import pytest

from tests.support.load import order_body, post_orders, product_id, query, statuses
from tests.support.servers import GunicornServer, backend_env, manage, wait_for

pytestmark = [pytest.mark.load, pytest.mark.redis]

LIMIT = 20
ATTEMPTS = 60


def _seconds_into_hour() -> float:
    return time.time() % 3600


@pytest.mark.redis
def test_the_rate_holds_exactly_across_workers(redis_url, tmp_path, log_dir):
    """60 simultaneous checkouts from one client at 20/h: exactly 20 pass, 40 get 429."""
    database_url = f"sqlite:///{tmp_path / 'throttle.sqlite3'}"
    env = backend_env(
        database_url=database_url,
        log_dir=log_dir,
        redis_url=redis_url,
        RETAIL_CHECKOUT_RATE=f"{LIMIT}/h",
    )
    with GunicornServer(env, workers=4) as server:
        manage(env, "seed_demo")
        product = product_id(database_url, "TEE-001")
        # The counter is per clock hour: never straddle two windows.
        wait_for(lambda: 5 < _seconds_into_hour() < 3590, timeout=20, what="mid-hour", every=0.5)
        answers = post_orders(server.url, [order_body(product)] * ATTEMPTS, concurrency=16)

    assert statuses(answers) == {201: LIMIT, 429: ATTEMPTS - LIMIT}
    throttled = [a for a in answers if a.status == 429]
    assert all(a.body["error"] == "throttled" for a in throttled)
    assert all(1 <= int(a.headers["retry-after"]) <= 3600 for a in throttled)
    rows = query(
        database_url,
        "SELECT metadata FROM retail_metric WHERE metric_type = 'throttled_requests'",
    )
    assert len(rows) == ATTEMPTS - LIMIT
    metadata = [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in rows]
    assert {m["client"] for m in metadata} == {"ip:127.0.0.1"}
