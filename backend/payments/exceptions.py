"""Errors of the payment gateway seam: what a call tells about the money.

Every error answers one question for the caller: could the gateway have carried the request
out? `GatewayUnavailable` says no (nothing was charged or refunded: safe to give the stock
back); `OutcomeUnknown` says maybe (only a replay with the same idempotency key can tell).
"""


class GatewayError(Exception):
    """The gateway gave no business answer; every subclass counts as a breaker failure."""


class GatewayUnavailable(GatewayError):
    """Nothing was done: connection refused, a 5xx answer, or no call made at all."""


class GatewayRejected(GatewayUnavailable):
    """The gateway refused the request itself (a 4xx): a bug to fix, not an outage."""


class CircuitOpen(GatewayUnavailable):
    """The payment breaker is OPEN: the gateway was not called."""

    def __init__(self, *, retry_after: int):
        super().__init__(f"circuit open; retry after {retry_after} s")
        self.retry_after = retry_after


class OutcomeUnknown(GatewayError):
    """The request may have been carried out: a timeout, or the connection lost after sending."""
