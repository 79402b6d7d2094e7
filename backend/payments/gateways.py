"""The payment gateway seam: one interface, a simulated implementation, and the chooser.

Declines are business answers returned as a `ChargeResult`; anything that means the
gateway could not answer (5xx, timeout, connection error) raises `GatewayUnavailable`.
"""

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

from django.conf import settings

ChargeStatus = Literal["succeeded", "declined"]

DECLINE_TOKEN = "tok_decline"


class GatewayUnavailable(Exception):
    """The gateway failed to answer (5xx, timeout, connection error, open breaker)."""


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    charge_id: str


@dataclass(frozen=True)
class RefundResult:
    refund_id: str


class PaymentGateway(Protocol):
    """What checkout and refunds need from a payment gateway."""

    def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult: ...

    def refund(self, *, charge_id: str, amount: Decimal) -> RefundResult: ...


class SimulatedGateway:
    """An in-process gateway: `tok_decline` is declined, every other token succeeds."""

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
