"""The payment gateway seam: one interface, its answers, and the in-process simulated gateway.

Declines are business answers returned as a `ChargeResult`; a call that got no business answer
raises a `payments.exceptions.GatewayError` saying whether anything may have been done.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol

ChargeStatus = Literal["succeeded", "declined"]

DECLINE_TOKEN = "tok_decline"


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    charge_id: str


@dataclass(frozen=True)
class RefundResult:
    refund_id: str


class PaymentGateway(Protocol):
    """What checkout, refunds and reconciliation need from a payment gateway.

    The same `idempotency_key` always answers the first call again: a replay never charges or
    refunds twice, and is the only way to learn an unknown outcome.
    """

    # Optional: `admission() -> AbstractContextManager[None]`, entered around a checkout,
    # raises `CircuitOpen` at once when a breaker guards the gateway and is OPEN.

    def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult: ...

    def refund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> RefundResult: ...


class SimulatedGateway:
    """An in-process gateway: `tok_decline` is declined, every other token succeeds.

    Its ids derive from the idempotency key, so a replay answers what the first call did,
    as the HTTP gateway's contract promises, with no state to keep.
    """

    def charge(
        self, *, amount: Decimal, currency: str, token: str, idempotency_key: str
    ) -> ChargeResult:
        status: ChargeStatus = "declined" if token == DECLINE_TOKEN else "succeeded"
        return ChargeResult(status=status, charge_id=f"sim_ch_{idempotency_key}")

    def refund(self, *, charge_id: str, amount: Decimal, idempotency_key: str) -> RefundResult:
        return RefundResult(refund_id=f"sim_re_{idempotency_key}")
