"""Payment attempts: open one, charge or replay it outside any transaction, record the outcome.

A charge's outcome is one of the `Payment.Status` values. An outcome that the gateway did not
tell (a timeout, a lost connection) is `unknown`, not `failed`: the customer may have been
charged, so the order keeps its stock until a replay with the same idempotency key says what
happened (`payment_replay`, run by reconcile_payments).
"""

import time
import uuid
from contextlib import AbstractContextManager, nullcontext

from django.conf import settings
from django.utils import timezone

from payments.exceptions import CircuitOpen, GatewayUnavailable, OutcomeUnknown
from payments.gateways import PaymentGateway, SimulatedGateway
from payments.models import Payment

_simulated = SimulatedGateway()


def payment_gateway(*, guarded: bool = True) -> PaymentGateway:
    """Return the gateway of `RETAIL_PAYMENT_GATEWAY_URL` (unset: the simulated one).

    `guarded`: behind this process's payment breaker. Reconciliation replays unguarded.
    """
    if settings.RETAIL_PAYMENT_GATEWAY_URL is None:
        return _simulated
    from payments.breaker import payment_breaker
    from payments.http_gateway import HttpGateway

    return HttpGateway(
        base_url=settings.RETAIL_PAYMENT_GATEWAY_URL,
        timeout=settings.RETAIL_GATEWAY_TIMEOUT_SECONDS,
        breaker=payment_breaker() if guarded else None,
    )


def payment_admission() -> AbstractContextManager[None]:
    """Return the gateway's admission: entering raises `CircuitOpen` at once when OPEN."""
    admission = getattr(payment_gateway(), "admission", None)
    return admission() if admission is not None else nullcontext()


def payment_create(*, order, payment_token: str) -> Payment:
    """Open a pending payment for an order (inside the caller's reservation transaction)."""
    return Payment.objects.create(
        order=order,
        amount=order.total,
        currency=order.currency,
        idempotency_key=uuid.uuid4().hex,
        replay_token=payment_token,
    )


def payment_charge(*, payment: Payment, gateway: PaymentGateway | None = None) -> Payment:
    """Ask the gateway to charge an open payment and set its outcome on the instance.

    Runs outside any transaction and holds no lock: the gateway may be slow. A replay of a
    payment whose outcome is unknown is the same call, with the same idempotency key. The
    caller records the outcome (`payment_record_outcome`) in its own short transaction.
    """
    gateway = gateway or payment_gateway()
    started = time.perf_counter()
    try:
        result = gateway.charge(
            amount=payment.amount,
            currency=payment.currency,
            token=payment.replay_token,
            idempotency_key=payment.idempotency_key,
        )
    except CircuitOpen as exc:
        # The breaker opened between admission and charge: the gateway was never called.
        _set_outcome(payment, Payment.Status.REJECTED_OPEN_CIRCUIT, reason=str(exc))
    except GatewayUnavailable as exc:
        _set_outcome(payment, Payment.Status.FAILED, reason=str(exc))
    except OutcomeUnknown as exc:
        _set_outcome(payment, Payment.Status.UNKNOWN, reason=str(exc))
    else:
        succeeded = result.status == "succeeded"
        status = Payment.Status.SUCCEEDED if succeeded else Payment.Status.DECLINED
        _set_outcome(payment, status, charge_id=result.charge_id)
    payment.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    return payment


def payment_replay(*, payment: Payment) -> Payment:
    """Replay the charge of an open payment to learn its outcome (reconciliation).

    The gateway answers the first charge again, or makes it if it never arrived. A refusal
    or 5xx now proves nothing about the first attempt, so the outcome stays unknown.
    """
    payment_charge(payment=payment, gateway=payment_gateway(guarded=False))
    if payment.status == Payment.Status.FAILED:
        payment.status = Payment.Status.UNKNOWN
    return payment


def _set_outcome(payment: Payment, status: str, *, charge_id: str = "", reason: str = "") -> None:
    payment.status = status
    payment.gateway_charge_id = charge_id
    payment.failure_reason = reason[:200]


def payment_record_outcome(*, payment: Payment) -> bool:
    """Store the outcome set on `payment` if it is still open; return whether it was.

    A conditional UPDATE, so that a checkout and a reconciliation settling the same payment
    (they learn the same answer: same idempotency key) record it once. A definitive outcome
    erases the replay token. On False, `payment` is reloaded with what was stored.
    """
    definitive = payment.status not in Payment.OPEN_STATUSES
    fields = {
        "status": payment.status,
        "gateway_charge_id": payment.gateway_charge_id,
        "latency_ms": payment.latency_ms,
        "failure_reason": payment.failure_reason,
        "updated_at": timezone.now(),
    }
    if definitive:
        fields["replay_token"] = ""
    recorded = Payment.objects.filter(pk=payment.pk, status__in=Payment.OPEN_STATUSES).update(
        **fields
    )
    if recorded:
        if definitive:
            payment.replay_token = ""
        return True
    payment.refresh_from_db()
    return False
