"""The payment gateway seam: one interface, a simulated implementation, and the chooser.

Declines are business answers returned as a `ChargeResult`; anything that means the
gateway could not answer (5xx, timeout, connection error) raises `GatewayUnavailable`.
"""

import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from django.conf import settings

ChargeStatus = Literal["succeeded", "declined"]

DECLINE_TOKEN = "tok_decline"


class GatewayUnavailable(Exception):
    """The gateway failed to answer (5xx, timeout, connection error, open breaker)."""


class GatewayRejected(GatewayUnavailable):
    """The gateway refused the request itself (a 4xx): a bug to fix, not an outage."""


class CircuitOpen(GatewayUnavailable):
    """The payment breaker is OPEN: the gateway was not called."""

    def __init__(self, *, retry_after: int):
        super().__init__(f"circuit open; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    charge_id: str


@dataclass(frozen=True)
class RefundResult:
    refund_id: str


class PaymentGateway(Protocol):
    """What checkout and refunds need from a payment gateway."""

    # Optional: `admission() -> AbstractContextManager[None]`, entered around a checkout,
    # raises `CircuitOpen` at once when a breaker guards the gateway and is OPEN.

    def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult: ...

    def refund(self, *, charge_id: str, amount: Decimal) -> RefundResult: ...


class SimulatedGateway:
    """An in-process gateway: `tok_decline` is declined, every other token succeeds."""

    def admission(self) -> AbstractContextManager[None]:
        return nullcontext()

    def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult:
        status: ChargeStatus = "declined" if token == DECLINE_TOKEN else "succeeded"
        return ChargeResult(status=status, charge_id=f"sim_ch_{uuid.uuid4().hex}")

    def refund(self, *, charge_id: str, amount: Decimal) -> RefundResult:
        return RefundResult(refund_id=f"sim_re_{uuid.uuid4().hex}")


_simulated = SimulatedGateway()


def payment_gateway() -> PaymentGateway:
    """Return the gateway configured by `RETAIL_PAYMENT_GATEWAY_URL` (unset: simulated)."""
    if settings.RETAIL_PAYMENT_GATEWAY_URL is None:
        return _simulated
    from payments.http_gateway import http_gateway

    return http_gateway()
