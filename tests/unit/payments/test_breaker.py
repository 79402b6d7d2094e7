"""The payment breaker: opens on consecutive failures, rejects at once, one trial decides."""

import threading
import time
import uuid

import pytest
import redis

from payments.breaker import CLOSED, HALF_OPEN, OPEN, PaymentBreaker
from payments.exceptions import CircuitOpen, GatewayRejected, GatewayUnavailable
from retail.models import Metric

pytestmark = pytest.mark.django_db


def _fail():
    raise GatewayUnavailable("HTTP 503")


def _decline():
    return "declined"


def _breaker(**overrides) -> PaymentBreaker:
    options = {"fail_max": 3, "reset_seconds": 30.0, "trial_seconds": 5.0} | overrides
    return PaymentBreaker(**options)


def _trip(breaker: PaymentBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(GatewayUnavailable):
            breaker.call(_fail)


def _wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.01)


def _transitions() -> list[tuple[str, str, float]]:
    rows = Metric.objects.filter(metric_type="circuit_breaker_state").order_by("id")
    return [(row.metadata["from"], row.metadata["to"], row.value) for row in rows]


def test_opens_after_fail_max_consecutive_failures():
    """Three failures in a row open it; the state change is recorded with from/to."""
    breaker = _breaker()
    _trip(breaker, 2)
    assert breaker.state == CLOSED
    _trip(breaker, 1)
    assert breaker.state == OPEN
    assert _transitions() == [(CLOSED, OPEN, 2.0)]


def test_declines_and_rejections_never_count_as_failures():
    """A decline (a business answer) and a 4xx leave the breaker closed."""
    breaker = _breaker(fail_max=2)
    for _ in range(5):
        assert breaker.call(_decline) == "declined"
        with pytest.raises(GatewayRejected):
            breaker.call(lambda: (_ for _ in ()).throw(GatewayRejected("HTTP 400")))
    assert breaker.state == CLOSED


def test_a_success_resets_the_count():
    """Failures must be consecutive: a success in between starts over."""
    breaker = _breaker()
    _trip(breaker, 2)
    breaker.call(_decline)
    _trip(breaker, 2)
    assert breaker.state == CLOSED


def test_open_rejects_at_once_without_calling():
    """When OPEN, admission and call raise CircuitOpen with a Retry-After, never calling."""
    breaker = _breaker()
    _trip(breaker, 3)
    called = []
    with pytest.raises(CircuitOpen) as raised:
        with breaker.admission():
            called.append("admitted")
    assert 1 <= raised.value.retry_after <= 30
    with pytest.raises(CircuitOpen):
        breaker.call(lambda: called.append("called"))
    assert called == []


def test_after_the_reset_timeout_one_trial_closes_it():
    """After the timeout one trial is let through; a second one meanwhile is turned away."""
    breaker = _breaker(reset_seconds=0.2)
    _trip(breaker, 3)
    _wait_until(lambda: breaker.open_remaining() == 0)
    with breaker.admission():
        with pytest.raises(CircuitOpen):
            with breaker.admission():
                pass
        assert breaker.call(_decline) == "declined"
    assert breaker.state == CLOSED
    with breaker.admission():
        pass
    assert _transitions() == [(CLOSED, OPEN, 2.0), (OPEN, HALF_OPEN, 1.0), (HALF_OPEN, CLOSED, 0.0)]


def test_a_failed_trial_opens_it_again():
    """If the trial fails, the breaker is OPEN for another full timeout."""
    breaker = _breaker(reset_seconds=0.2)
    _trip(breaker, 3)
    _wait_until(lambda: breaker.open_remaining() == 0)
    with breaker.admission():
        with pytest.raises(GatewayUnavailable):
            breaker.call(_fail)
    assert breaker.state == OPEN
    assert breaker.open_remaining() > 0.1
    assert _transitions()[-1][:2] == (HALF_OPEN, OPEN)


def test_a_rejection_never_waits_behind_a_slow_call():
    """While one thread's gateway call hangs, an OPEN rejection still answers at once.

    pybreaker holds its lock around the protected call; this breaker does not, so the
    lock is free during the slow call and admission takes no lock at all.
    """
    breaker = _breaker(fail_max=1)
    release = threading.Event()
    in_flight = threading.Event()

    def slow():
        in_flight.set()
        release.wait(10)
        return "succeeded"

    worker = threading.Thread(target=breaker.call, args=(slow,))
    worker.start()
    try:
        assert in_flight.wait(5)
        with pytest.raises(GatewayUnavailable):
            breaker.call(_fail)
        assert breaker.state == OPEN
        started = time.perf_counter()
        with pytest.raises(CircuitOpen):
            with breaker.admission():
                pass
        assert time.perf_counter() - started < 0.05
        assert breaker._breaker._lock.acquire(timeout=0.05)
        breaker._breaker._lock.release()
    finally:
        release.set()
        worker.join(timeout=10)


@pytest.fixture
def shared_namespace(redis_url):
    """A Redis namespace for one test, deleted afterwards."""
    client = redis.Redis.from_url(redis_url)
    namespace = f"retail-test-{uuid.uuid4().hex[:12]}"
    yield client, namespace
    for key in client.scan_iter(f"*{namespace}*"):
        client.delete(key)
    client.close()


@pytest.mark.redis
def test_workers_share_one_state_in_redis_and_record_each_change_once(shared_namespace):
    """Failures seen by two workers add up; both see OPEN; each change is recorded once."""
    client, namespace = shared_namespace
    first, second = (
        _breaker(reset_seconds=0.3, redis_client=client, namespace=namespace) for _ in range(2)
    )
    _trip(first, 2)
    _trip(second, 1)
    assert (first.state, second.state) == (OPEN, OPEN)
    for breaker in (first, second):
        with pytest.raises(CircuitOpen):
            with breaker.admission():
                pass
    _wait_until(lambda: first.open_remaining() == 0)
    with first.admission():
        # The trial slot is shared: the other worker is turned away meanwhile.
        with pytest.raises(CircuitOpen):
            with second.admission():
                pass
        first.call(_decline)
    assert second.state == CLOSED
    second.call(_decline)  # the second worker notices the changes: nothing recorded twice
    assert _transitions() == [(CLOSED, OPEN, 2.0), (OPEN, HALF_OPEN, 1.0), (HALF_OPEN, CLOSED, 0.0)]


@pytest.mark.redis
def test_redis_keeps_the_open_period_to_the_sub_second(shared_namespace):
    """The shared opened-at stamp is precise: a 1.5 s period is not cut to 0.5 s."""
    client, namespace = shared_namespace
    breaker = _breaker(fail_max=1, reset_seconds=1.5, redis_client=client, namespace=namespace)
    _trip(breaker, 1)
    assert breaker.open_remaining() > 1.4


@pytest.fixture
def redis_later(tmp_path):
    """A Redis URL on a free port, and a function that starts redis-server there."""
    import shutil
    import socket
    import subprocess

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed: cannot start a Redis that comes back")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = []

    def start() -> None:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(tmp_path)]
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        try:
            _wait_until(lambda: _answers(client))
        finally:
            client.close()

    yield f"redis://127.0.0.1:{port}/0", start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def _answers(client) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_a_worker_started_while_redis_was_down_joins_the_shared_state_when_it_is_back(
    redis_later, monkeypatch, settings
):
    """Finding 8: the stand-in breaker is not kept for good; Redis is asked again."""
    from payments import breaker as breaker_module

    url, start_redis = redis_later
    monkeypatch.setattr(breaker_module, "REDIS_RETRY_SECONDS", 0.05)
    settings.REDIS_URL = url
    stand_in = breaker_module.payment_breaker()
    assert stand_in._redis is None
    start_redis()
    _wait_until(lambda: breaker_module.payment_breaker()._redis is not None)
    shared = breaker_module.payment_breaker()
    # Another worker (a second breaker on the same namespace) sees what this one counts.
    other = PaymentBreaker(
        fail_max=shared._breaker.fail_max,
        reset_seconds=30,
        trial_seconds=5,
        redis_client=redis.Redis.from_url(url),
        namespace=settings.RETAIL_SHARED_STATE_PREFIX,
    )
    for _ in range(shared._breaker.fail_max):
        with pytest.raises(GatewayUnavailable):
            shared.call(_fail)
    assert other.state == OPEN
