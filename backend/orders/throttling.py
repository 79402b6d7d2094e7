"""Throttling of checkout: a fixed-window counter per client in the shared cache.

Why not DRF's `SimpleRateThrottle`: it reads the history, appends and writes it back,
so concurrent workers overwrite each other's hits (DRF issues #5181, #5494, #8127).
Why not django-ratelimit: 403 by default, no `Retry-After`, and it refuses per-process
caches. Here each request is one atomic `incr` on a key named after the client and the
current window — Redis INCRBY across workers, a locked dict in LocMemCache — so the
count is exact under any concurrency. The key lives two seconds past its window, so
`incr` never meets a key that expired under it.
"""

import ipaddress
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from retail import events
from retail.logging import log_event
from retail.metrics import THROTTLED_REQUESTS, record_metric

logger = logging.getLogger(__name__)

_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600}


def rate_parse(rate: str) -> tuple[int, int]:
    """Parse `N/s`, `N/m` or `N/h` into (requests, period in seconds)."""
    count, _, unit = rate.partition("/")
    return int(count), _PERIOD_SECONDS[unit]


def client_ip(request) -> str:
    """Return the client's address, believing `X-Forwarded-For` only from trusted proxies.

    The header is read right to left: each trusted proxy appends the address it saw, so
    the first address that is not a trusted proxy is the client. Anything further left
    was written by the client itself and is ignored.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    trusted = settings.RETAIL_TRUSTED_PROXIES
    if not trusted or not _is_trusted(remote, trusted):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    nearest = remote
    for hop in reversed([hop for hop in hops if hop]):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            # Garbage in the chain: the last proxy that wrote a real address is all we know.
            return nearest
        if not any(address in network for network in trusted):
            return str(address)
        nearest = str(address)
    return nearest


def _is_trusted(remote: str, trusted: list) -> bool:
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def throttle_client_key(request: Request) -> str:
    """Name the client: its user when authenticated, else its address."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{client_ip(request)}"


class CheckoutRateThrottle(BaseThrottle):
    """Allow `RETAIL_CHECKOUT_RATE` checkouts per client per window; answer 429 beyond."""

    def __init__(self):
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            # Only checkouts spend the budget, not a stray GET answered 405.
            return True
        limit, period = rate_parse(settings.RETAIL_CHECKOUT_RATE)
        client = throttle_client_key(request)
        now = time.time()
        window = int(now // period)
        key = f"{settings.RETAIL_SHARED_STATE_PREFIX}:throttle:checkout:{client}:{window}"
        try:
            cache.add(key, 0, timeout=math.ceil((window + 1) * period - now) + 2)
            count = cache.incr(key)
        except Exception:
            # The shared cache is down: sell rather than turn every buyer away.
            logger.exception("throttle.cache_unavailable", extra={"event": "throttle.cache_error"})
            return True
        if count <= limit:
            return True
        self._wait = (window + 1) * period - now
        metadata = {"scope": "checkout", "client": client, "rate": settings.RETAIL_CHECKOUT_RATE}
        record_metric(THROTTLED_REQUESTS, 1, {**metadata, "path": request.path})
        log_event(events.THROTTLE_REJECTED, logger=logger, **metadata)
        return False

    def wait(self) -> float | None:
        return self._wait
