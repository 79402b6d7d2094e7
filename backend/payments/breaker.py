"""The payment gateway's circuit breaker: pybreaker's state machine, never its lock.

pybreaker holds one lock around the protected call (its issues #3, #55): under threaded
workers an OPEN rejection would queue behind another thread's slow gateway call. Here
the gateway is called outside the breaker, then the outcome is replayed through
`CircuitBreaker.call`, so the lock covers microseconds of bookkeeping; and the OPEN
check before a call reads the (shared) storage directly, taking no lock at all.

With `REDIS_URL` every worker shares one state in Redis; without it each process has
its own. Each state change is recorded once as a `circuit_breaker_state` metric and a
WARNING log line, even though every worker that notices a shared change tells its
listeners.
"""

import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
import redis
from django.conf import settings
from redis.exceptions import RedisError

from payments.exceptions import CircuitOpen, GatewayError, GatewayRejected
from retail import events
from retail.logging import log_event
from retail.metrics import CIRCUIT_BREAKER_STATE, record_metric

logger = logging.getLogger(__name__)

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
# The numeric value of a `circuit_breaker_state` row: 0 healthy, 2 rejecting.
STATE_CODES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
BREAKER_NAME = "payment_gateway"
# Redis answers in well under a millisecond; a stalled Redis must not stall checkout.
_REDIS_TIMEOUT_SECONDS = 0.25
_RELEASE_IF_OWNER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


class _PreciseRedisStorage(pybreaker.CircuitRedisStorage):
    """pybreaker's Redis storage, keeping the opened-at stamp to the microsecond.

    Upstream stores whole seconds, which would cut a 2 s OPEN period by up to a second.
    """

    @property
    def opened_at(self) -> datetime | None:
        try:
            raw = self._redis.get(self._namespace("opened_at"))
        except RedisError:
            self.logger.exception("RedisError")
            return None
        return datetime.fromtimestamp(float(raw), UTC) if raw else None

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        try:
            self._redis.set(self._namespace("opened_at"), repr(now.timestamp()))
        except RedisError:
            self.logger.exception("RedisError")


class _TransitionRecorder(pybreaker.CircuitBreakerListener):
    """Record each state change once, however many workers notice it."""

    def __init__(self, breaker: "PaymentBreaker"):
        self._breaker = breaker

    def state_change(self, cb, old_state, new_state) -> None:
        source = old_state.name if old_state is not None else None
        target = new_state.name
        if source == target or not self._breaker.claim_transition(target):
            return
        metadata = {"breaker": BREAKER_NAME, "from": source, "to": target, "pid": os.getpid()}
        record_metric(CIRCUIT_BREAKER_STATE, STATE_CODES[target], metadata)
        log_event(events.BREAKER_STATE_CHANGE, level=logging.WARNING, logger=logger, **metadata)


class PaymentBreaker:
    """CLOSED → OPEN after `fail_max` consecutive failures; OPEN rejects at once; after
    `reset_seconds` one HALF_OPEN trial closes or re-opens it."""

    def __init__(
        self,
        *,
        fail_max: int,
        reset_seconds: float,
        trial_seconds: float,
        redis_client: redis.Redis | None = None,
        namespace: str = "retail",
    ):
        self._reset_seconds = reset_seconds
        # A trial holds its slot at most this long, so a worker killed mid-trial does not
        # keep the breaker from ever closing.
        self._trial_ms = max(1, int(trial_seconds * 1000))
        self._redis = redis_client
        self._namespace = f"{namespace}:{BREAKER_NAME}"
        self._trial_lock = threading.Lock()
        self._trial_token = threading.local()
        if redis_client is not None:
            # Redis down: CLOSED, deliberately. Payments go on (each call still bounded by
            # the gateway timeout) rather than a Redis outage stopping every sale.
            storage = _PreciseRedisStorage(
                CLOSED, redis_client, namespace=self._namespace, fallback_circuit_state=CLOSED
            )
        else:
            storage = pybreaker.CircuitMemoryStorage(CLOSED)
        self._storage = storage
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_seconds,
            state_storage=storage,
            listeners=[_TransitionRecorder(self)],
            exclude=[GatewayRejected],
            name=BREAKER_NAME,
        )

    @property
    def state(self) -> str:
        """Return the current state as stored (shared across workers with Redis)."""
        return self._storage.state

    @property
    def fail_counter(self) -> int:
        """Return the number of consecutive failures counted so far."""
        return self._storage.counter

    def open_remaining(self) -> float:
        """Return the seconds the breaker still rejects calls; 0 when a call may go through."""
        if self._storage.state != OPEN:
            return 0.0
        opened_at = self._storage.opened_at
        if opened_at is None:
            return 0.0
        elapsed = (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, self._reset_seconds - elapsed)

    @contextmanager
    def admission(self) -> Iterator[None]:
        """Let a checkout through, or raise `CircuitOpen` at once without taking any lock.

        When the reset timeout has passed, only one checkout at a time (across workers,
        with Redis) is let through as the HALF_OPEN trial; the others are turned away
        until the trial has decided.
        """
        state = self._storage.state
        if state == CLOSED:
            yield
            return
        remaining = self.open_remaining() if state == OPEN else 0.0
        if remaining > 0:
            raise CircuitOpen(retry_after=max(1, math.ceil(remaining)))
        if not self._trial_acquire():
            raise CircuitOpen(retry_after=1)
        try:
            yield
        finally:
            self._trial_release()

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call the gateway unless OPEN, then feed the outcome to the breaker.

        `func` raises a `GatewayError` for failures (an unknown outcome counts as one);
        a decline is a normal return.
        """
        remaining = self.open_remaining()
        if remaining > 0:
            raise CircuitOpen(retry_after=max(1, math.ceil(remaining)))
        try:
            result = func(*args, **kwargs)
        except GatewayError as exc:
            failure: GatewayError | None = exc
        else:
            failure = None

        def replay() -> T:
            if failure is not None:
                raise failure
            return result

        try:
            # Raises `failure` again, unless the breaker trips on it (CircuitBreakerError).
            return self._breaker.call(replay)
        except pybreaker.CircuitBreakerError:
            # Tripped by this failure, or another worker opened the breaker while this
            # call was in flight: an answer that did come back still counts.
            if failure is not None:
                raise failure from None
            return result

    def claim_transition(self, target: str) -> bool:
        """Return True for the first worker to report this change (keyed on opened-at)."""
        if self._redis is None:
            return True
        opened_at = self._storage.opened_at
        stamp = repr(opened_at.timestamp()) if opened_at else "never"
        key = f"{self._namespace}:transition:{target}:{stamp}"
        try:
            return bool(self._redis.set(key, os.getpid(), nx=True, ex=24 * 3600))
        except RedisError:
            logger.exception("breaker.redis_error")
            return True

    def _trial_acquire(self) -> bool:
        if self._redis is None:
            return self._trial_lock.acquire(blocking=False)
        token = uuid.uuid4().hex
        try:
            acquired = self._redis.set(self._trial_key, token, nx=True, px=self._trial_ms)
        except RedisError:
            logger.exception("breaker.redis_error")
            acquired = True
        self._trial_token.value = token if acquired else None
        return bool(acquired)

    def _trial_release(self) -> None:
        if self._redis is None:
            self._trial_lock.release()
            return
        token, self._trial_token.value = getattr(self._trial_token, "value", None), None
        if token is None:
            return
        try:
            self._redis.eval(_RELEASE_IF_OWNER, 1, self._trial_key, token)
        except RedisError:
            logger.exception("breaker.redis_error")

    @property
    def _trial_key(self) -> str:
        return f"{self._namespace}:trial"


# While Redis does not answer, a worker keeps a breaker of its own and asks Redis again
# this often, so it joins the shared state once Redis is back.
REDIS_RETRY_SECONDS = 5.0

_breakers: dict[tuple, tuple[PaymentBreaker, float | None]] = {}
_breakers_lock = threading.Lock()


def payment_breaker() -> PaymentBreaker:
    """Return this process's breaker for the configured gateway (shared state with Redis)."""
    key = (
        settings.RETAIL_SHARED_STATE_PREFIX,
        settings.REDIS_URL,
        settings.RETAIL_BREAKER_FAIL_MAX,
        settings.RETAIL_BREAKER_RESET_SECONDS,
        # A trial is one checkout: two gateway calls at most (a retried connection), plus slack.
        2 * settings.RETAIL_GATEWAY_TIMEOUT_SECONDS + 5,
    )
    cached = _breakers.get(key)
    if cached is not None and (cached[1] is None or time.monotonic() < cached[1]):
        return cached[0]
    with _breakers_lock:
        cached = _breakers.get(key)
        if cached is None or (cached[1] is not None and time.monotonic() >= cached[1]):
            if len(_breakers) >= 32:
                _breakers.clear()
            cached = _breakers[key] = _breaker_build(*key)
        return cached[0]


def _breaker_build(
    namespace: str, redis_url: str | None, fail_max: int, reset_seconds: float, trial_seconds: float
) -> tuple[PaymentBreaker, float | None]:
    """Return a breaker and, for a stand-in while Redis is down, when to ask Redis again."""
    options = {
        "fail_max": fail_max,
        "reset_seconds": reset_seconds,
        "trial_seconds": trial_seconds,
        "namespace": namespace,
    }
    if not redis_url:
        return PaymentBreaker(**options), None
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=_REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
    )
    try:
        return PaymentBreaker(redis_client=client, **options), None
    except RedisError:
        client.close()
        logger.warning(
            "breaker.redis_unavailable",
            extra={"event": "breaker.redis_unavailable", "retry_seconds": REDIS_RETRY_SECONDS},
        )
        return PaymentBreaker(**options), time.monotonic() + REDIS_RETRY_SECONDS
