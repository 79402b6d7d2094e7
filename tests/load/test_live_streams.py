"""Open live dashboards under real gunicorn: checkout still served, a stop still prompt.

The serving model of docs/live-dashboard.md: threaded workers, a capped number of
streams per worker, streams ended by the worker the moment it is told to stop.
"""

import http.client
import time
from urllib.parse import urlsplit

import pytest

from tests.support.live import Dashboards, staff_user
from tests.support.load import order_body, post_orders, product_id, statuses
from tests.support.servers import GunicornServer, backend_env, manage, wait_for

pytestmark = pytest.mark.load

DASHBOARDS = 20
# GunicornServer stops with --graceful-timeout 20: an open stream that held the stop
# would take that long.
PROMPT_STOP_SECONDS = 8


def _site(tmp_path, log_dir):
    env = backend_env(
        database_url=f"sqlite:///{tmp_path / 'live.sqlite3'}",
        log_dir=log_dir,
        RETAIL_CHECKOUT_RATE="1000000/m",
        RETAIL_LOG_STDOUT="off",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "seed_demo", "--flash-stock", "150")
    staff_user(env)
    return env


def test_checkout_is_served_while_twenty_dashboards_stream(tmp_path, log_dir):
    """20 open streams on 4 workers: every buyer answered, none 5xx, the streams go on."""
    env = _site(tmp_path, log_dir)
    database_url = env["DATABASE_URL"]
    with GunicornServer(env, workers=4, migrate=False) as server:
        flash = product_id(database_url, "FLASH-001")
        with Dashboards(server.url, DASHBOARDS) as dashboards:
            opened = [v.status for v in dashboards.viewers]
            # Over a worker's cap (8 of its 16 threads) a page is told to poll: 503.
            assert set(opened) <= {200, 503} and opened.count(200) >= 16, opened
            started = time.monotonic()
            answers = post_orders(server.url, [order_body(flash)] * 200, concurrency=16)
            elapsed = time.monotonic() - started
            assert dashboards.streaming() == opened.count(200)
            # Events kept flowing to every open page during the sale (one each 2 s).
            wait_for(
                lambda: all(v.events >= 2 for v in dashboards.viewers if v.status == 200),
                timeout=15,
                what="every open dashboard to receive deltas",
            )
        # A keep-alive client is answered and let go (keepalive = 0): its connections
        # never pile up on the worker that accepted them.
        address = urlsplit(server.url)
        client = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
        client.request("GET", "/healthz")
        probe = client.getresponse()
        probe.read()
        client.close()
    assert probe.status == 200 and probe.getheader("Connection") == "close"
    counted = statuses(answers)
    assert counted[201] == 150 and counted[409] == 50, counted
    assert elapsed < 60, elapsed


def test_a_graceful_stop_ends_open_streams_at_once(tmp_path, log_dir):
    """SIGTERM with dashboards open: every stream ends and gunicorn exits well before
    its graceful timeout."""
    env = _site(tmp_path, log_dir)
    server = GunicornServer(env, workers=2, migrate=False).__enter__()
    try:
        with Dashboards(server.url, 6) as dashboards:
            assert [v.status for v in dashboards.viewers] == [200] * 6
            process = server.process
            started = time.monotonic()
            server.stop()
            stopped = time.monotonic() - started
            assert process.returncode is not None
            assert dashboards.wait_ended(5)
            ended = [v.ended_at - started for v in dashboards.viewers]
    finally:
        server.stop()
    assert stopped < PROMPT_STOP_SECONDS, stopped
    assert max(ended) < PROMPT_STOP_SECONDS, ended
