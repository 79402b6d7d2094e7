"""Payment attempts: open one, charge it outside any transaction, record the outcome."""

import time
import uuid

from payments.gateways import GatewayUnavailable, PaymentGateway, payment_gateway
from payments.models import Payment


def payment_create(*, order) -> Payment:
    """Open a pending payment for an order (inside the caller's reservation transaction)."""
    return Payment.objects.create(
        order=order,
        amount=order.total,
        currency=order.currency,
        idempotency_key=uuid.uuid4().hex,
    )


def payment_charge(
    *, payment: Payment, payment_token: str, gateway: PaymentGateway | None = None
) -> Payment:
    """Ask the gateway to charge a pending payment and set its outcome on the instance.

    Runs outside any transaction and holds no lock: the gateway may be slow. The caller
    saves the outcome in its own short transaction.
    """
    gateway = gateway or payment_gateway()
    started = time.perf_counter()
    try:
        result = gateway.charge(
            amount=payment.amount,
            currency=payment.currency,
            token=payment_token,
            idempotency_key=payment.idempotency_key,
        )
    except GatewayUnavailable as exc:
        payment.status = Payment.Status.FAILED
        payment.failure_reason = str(exc)[:200]
    else:
        payment.gateway_charge_id = result.charge_id
        payment.status = (
            Payment.Status.SUCCEEDED if result.status == "succeeded" else Payment.Status.DECLINED
        )
    payment.latency_ms = (time.perf_counter() - started) * 1000
    return payment


def payment_save_outcome(*, payment: Payment) -> None:
    """Persist the outcome `payment_charge` set (inside the caller's settle transaction)."""
    payment.save(
        update_fields=["status", "gateway_charge_id", "latency_ms", "failure_reason", "updated_at"]
    )
