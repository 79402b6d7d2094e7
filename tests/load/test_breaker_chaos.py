"""A2 under real faults: gunicorn in front of the fake gateway, which goes down and up.

Normal traffic succeeds; with the gateway down the breaker opens after FAIL_MAX
failures; the next 100 checkouts answer 503 fast and reserve nothing; with the gateway
back, one trial after the reset timeout closes the breaker and orders succeed again.
"""

import json
import threading

import pytest

from retailctl.core.sketch import exact_quantile
from tests.support.load import (
    latency_summary,
    nothing_lost,
    order_body,
    post_orders,
    product_id,
    query,
    statuses,
    stock,
)
from tests.support.servers import FakeGateway, GunicornServer, backend_env, manage, wait_for

pytestmark = pytest.mark.load

FAIL_MAX = 5
RESET_SECONDS = 3


def _gateway_env(database_url, log_dir, gateway_url, redis_url, timeout_seconds=3, **extra):
    return backend_env(
        database_url=database_url,
        log_dir=log_dir,
        redis_url=redis_url,
        RETAIL_PAYMENT_GATEWAY_URL=gateway_url,
        RETAIL_BREAKER_FAIL_MAX=str(FAIL_MAX),
        RETAIL_BREAKER_RESET_SECONDS=str(RESET_SECONDS),
        RETAIL_GATEWAY_TIMEOUT_SECONDS=str(timeout_seconds),
        RETAIL_CHECKOUT_RATE="100000/m",
        **extra,
    )


def _orders_count(database_url: str) -> int:
    return query(database_url, "SELECT COUNT(*) FROM orders_order")[0][0]


def _metrics(database_url: str, metric_type: str) -> list[tuple[float, dict]]:
    rows = query(
        database_url,
        "SELECT value, metadata FROM retail_metric WHERE metric_type = :t ORDER BY id",
        t=metric_type,
    )
    return [(value, meta if isinstance(meta, dict) else json.loads(meta)) for value, meta in rows]


def _log_records(log_dir, message: str) -> list[dict]:
    records = []
    for path in sorted(log_dir.glob("application.log*")):
        for line in path.read_text(errors="replace").splitlines():
            if f'"{message}"' in line:
                records.append(json.loads(line))
    return records


@pytest.mark.redis
def test_breaker_opens_fails_fast_and_closes_across_workers(database_url, redis_url, log_dir):
    """The A2 chaos run with 4 workers sharing one breaker through Redis."""
    with FakeGateway(backend_env(database_url=database_url, log_dir=log_dir)) as gateway:
        env = _gateway_env(database_url, log_dir, gateway.url, redis_url)
        with GunicornServer(env, workers=4) as server:
            manage(env, "seed_demo")
            product = product_id(database_url, "TEE-001")
            stock_before = stock(database_url, "TEE-001")

            normal = post_orders(
                server.url, [order_body(product) for _ in range(20)], concurrency=4
            )
            assert statuses(normal) == {201: 20}

            gateway.control(mode="down")
            # One at a time, so the count is exact: FAIL_MAX failures, each answered 503
            # with the order failed and its stock given back.
            failures = [
                post_orders(server.url, [order_body(product)], concurrency=1)[0]
                for _ in range(FAIL_MAX)
            ]
            assert [a.status for a in failures] == [503] * FAIL_MAX
            assert all(a.body["detail"]["order_id"] for a in failures)
            orders_before = _orders_count(database_url)
            stock_at_open = stock(database_url, "TEE-001")

            fast = post_orders(server.url, [order_body(product) for _ in range(100)], concurrency=8)
            assert statuses(fast) == {503: 100}
            assert all(a.body["error"] == "payment_unavailable" for a in fast)
            assert all(1 <= int(a.headers["retry-after"]) <= RESET_SECONDS for a in fast)
            # Seen by the client, a fast-fail never waits on the gateway (timeout 3 s); the
            # server-side p99 (A2's measure) is checked on the recorded rows below.
            fast_latency = latency_summary(fast)
            assert fast_latency["p99_ms"] < 1000, fast_latency
            assert _orders_count(database_url) == orders_before
            assert stock(database_url, "TEE-001") == stock_at_open

            gateway.control(mode="up")
            polls = []

            def trial_closed() -> bool:
                polls.append(post_orders(server.url, [order_body(product)], concurrency=1)[0])
                return polls[-1].status == 201

            wait_for(trial_closed, timeout=RESET_SECONDS + 10, what="a trial to close", every=0.2)
            # Until the reset timeout the polls were turned away like the 100 above.
            assert statuses(polls[:-1]) == ({503: len(polls) - 1} if len(polls) > 1 else {})
            after = post_orders(server.url, [order_body(product) for _ in range(20)], concurrency=4)
            assert statuses(after) == {201: 20}
            worker_pids = server.worker_pids()
        # Stopped: every worker has flushed its metric rows and log lines.
        gateway_charges = gateway.state()["charges_succeeded"]

    assert stock(database_url, "TEE-001") == stock_before - 41
    assert nothing_lost(database_url) == {}
    succeeded = query(
        database_url, "SELECT COUNT(*) FROM payments_payment WHERE status='succeeded'"
    )
    # Each paid order was charged once at the gateway, and no charge went unrecorded.
    assert gateway_charges == succeeded[0][0] == 41

    transitions = [
        (meta["from"], meta["to"]) for _, meta in _metrics(database_url, "circuit_breaker_state")
    ]
    assert transitions == [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]
    fast_fails = _metrics(database_url, "payment_fast_fail")
    assert len(fast_fails) == 100 + len(polls) - 1
    recorded = sorted(value for value, _ in fast_fails)
    assert recorded[int(0.99 * (len(recorded) - 1))] < 100, recorded[-5:]
    # Every worker turned checkouts away: all of them saw the one shared OPEN state.
    assert {meta["pid"] for _, meta in fast_fails} == worker_pids
    logged = _log_records(log_dir, "breaker.state_change")
    assert [(r["from"], r["to"]) for r in logged] == transitions
    assert all(r["request_id"] for r in logged)
    assert all(r["level"] == "WARNING" for r in logged)


def test_rejections_never_wait_behind_a_slow_trial_in_a_threaded_worker(tmp_path, log_dir):
    """One worker, 4 threads, no Redis: while one thread's trial waits on a slow gateway,
    the other threads still turn checkouts away in well under 100 ms.

    pybreaker alone would hold its lock through the slow call (its issues #3, #55) and
    every rejection would queue behind it for the gateway's latency.
    """
    database_url = f"sqlite:///{tmp_path / 'threads.sqlite3'}"
    with FakeGateway(backend_env(database_url=database_url, log_dir=log_dir)) as gateway:
        env = _gateway_env(database_url, log_dir, gateway.url, None, timeout_seconds=6)
        with GunicornServer(env, workers=1, threads=4) as server:
            manage(env, "seed_demo")
            product = product_id(database_url, "TEE-001")
            gateway.control(mode="down")
            failures = [post_orders(server.url, [order_body(product)])[0] for _ in range(FAIL_MAX)]
            assert [a.status for a in failures] == [503] * FAIL_MAX
            gateway.control(mode="slow", latency_ms=4000)

            answers = []

            def until_trial() -> None:
                # Checkouts are turned away until the reset timeout; the first one after
                # it is the trial, which waits four seconds on the slow gateway.
                while not answers or answers[-1].status == 503:
                    answers.append(post_orders(server.url, [order_body(product)])[0])

            trial = threading.Thread(target=until_trial)
            trial.start()
            try:
                wait_for(
                    lambda: gateway.state()["in_flight"] == 1,
                    timeout=RESET_SECONDS + 10,
                    what="the trial to reach the gateway",
                    every=0.02,
                )
                beside = post_orders(server.url, [order_body(product)] * 150, concurrency=3)
                still_in_flight = gateway.state()["in_flight"] == 1
            finally:
                trial.join(timeout=30)

    assert still_in_flight
    assert statuses(beside) == {503: 150}
    # Queued behind the trial they would each wait its 4 s; they are answered at once (the
    # bound leaves room for a loaded machine's scheduling, not for the trial's wait).
    assert max(a.latency_ms for a in beside) < 1000, latency_summary(beside)
    recorded = [value for value, _ in _metrics(database_url, "payment_fast_fail")]
    # A2's own bar is the p99 (SPEC §4), over enough rejections that it is not their maximum.
    # The maximum only has to stay clear of the trial's 4 s: one rejection took 198 ms once on
    # a loaded CI machine, a stall of the whole worker, not a wait on the trial.
    assert recorded and exact_quantile(recorded, 0.99) < 100, sorted(recorded)[-5:]
    assert max(recorded) < 1000, sorted(recorded)[-5:]
    assert answers[-1].status == 201
    assert nothing_lost(database_url) == {}
