"""Payment attempts: open one, charge it outside any transaction, record the outcome."""

import time
import uuid
from contextlib import AbstractContextManager, nullcontext

from django.utils import timezone

from payments.gateways import CircuitOpen, GatewayUnavailable, PaymentGateway, payment_gateway
from payments.models import Payment


def payment_admission() -> AbstractContextManager[None]:
    """Return the gateway's admission: entering raises `CircuitOpen` at once when OPEN.

    A gateway with no breaker in front of it admits every checkout.
    """
    admission = getattr(payment_gateway(), "admission", None)
    return admission() if admission is not None else nullcontext()


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
    except CircuitOpen as exc:
        # The breaker opened between admission and charge: the gateway was never called.
        payment.status = Payment.Status.REJECTED_OPEN_CIRCUIT
        payment.failure_reason = str(exc)[:200]
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


def payment_abandon(*, order) -> list[str]:
    """Fail the pending payments of an abandoned order; return their idempotency keys."""
    pending = Payment.objects.filter(order=order, status=Payment.Status.PENDING)
    keys = list(pending.values_list("idempotency_key", flat=True))
    pending.update(
        status=Payment.Status.FAILED,
        failure_reason="abandoned: the order stayed pending and was released",
        updated_at=timezone.now(),
    )
    return keys
