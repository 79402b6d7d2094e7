"""Refunds: claim, ask the gateway (or replay), complete; each claim replayable by its key.

A refund's claim commits before the gateway is called; the gateway's answer completes it
in a second short transaction guarded by the refund's status, so a staff retry, a
reconciliation and the original request may race and the money, the order and the stock
still move exactly once.
"""

import logging
import uuid

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from catalog.models import StockMovement
from catalog.services import product_stock_increment
from orders.exceptions import OrderNotRefundable, PaymentUnavailable
from orders.models import Order, OrderItem, Refund
from orders.transactions import write_durably
from payments.exceptions import CircuitOpen, GatewayUnavailable, OutcomeUnknown
from payments.gateways import PaymentGateway
from payments.models import Payment
from payments.services import payment_gateway
from retail import events
from retail.logging import log_event
from retail.metrics import REFUNDS_PER_DAY, record_metric


def order_refund(*, order_id: int, actor) -> Refund:
    """Refund a paid order in full: claim, gateway refund, then status and stock.

    A refund left pending (its answer lost, its process killed) is replayed with its own
    idempotency key: retrying a refund never refunds twice. The refund comes back
    `succeeded`, or `pending` when the gateway did not answer (reconcile_payments, or the
    next retry, finishes it).
    """
    refund, charge_id, fresh = write_durably(lambda: _refund_claim(order_id=order_id, actor=actor))
    try:
        refund_send(
            refund=refund, charge_id=charge_id, gateway=payment_gateway(), raise_unavailable=True
        )
    except PaymentUnavailable:
        if fresh:
            # Nothing was refunded and nobody else holds this claim: the order is
            # refundable again, exactly as before the request.
            Refund.objects.filter(pk=refund.pk, status=Refund.Status.PENDING).delete()
        raise
    refund.refresh_from_db()
    return refund


def _refund_claim(*, order_id: int, actor) -> tuple[Refund, str, bool]:
    """Claim the order's one refund, or return the pending one to replay it."""
    with transaction.atomic():
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            raise Http404
        pending = Refund.objects.filter(order=order, status=Refund.Status.PENDING).first()
        fresh = pending is None
        if fresh:
            if order.status != Order.Status.PAID:
                raise OrderNotRefundable()
            try:
                with transaction.atomic():
                    refund = refund_open(order=order, reason=Refund.Reason.REQUESTED, actor=actor)
            except IntegrityError:
                # A concurrent request claimed it first: replay that claim instead.
                refund, fresh = Refund.objects.get(order=order), False
                if refund.status != Refund.Status.PENDING:
                    raise OrderNotRefundable() from None
        else:
            refund = pending
        charge_id = order.payments.get(status=Payment.Status.SUCCEEDED).gateway_charge_id
    return refund, charge_id, fresh


def refund_open(*, order: Order, reason: str, actor) -> Refund:
    return Refund.objects.create(
        order=order,
        amount=order.total,
        reason=reason,
        idempotency_key=uuid.uuid4().hex,
        created_by=actor,
    )


def refund_send(
    *, refund: Refund, charge_id: str, gateway: PaymentGateway, raise_unavailable: bool = False
) -> str:
    """Ask the gateway for a claimed refund (or replay it) and complete it if it succeeded.

    Returns `succeeded` or `unknown`; a definitive failure (nothing refunded) raises
    PaymentUnavailable when `raise_unavailable`, else counts as `unknown` (retried later).
    """
    try:
        result = gateway.refund(
            charge_id=charge_id, amount=refund.amount, idempotency_key=refund.idempotency_key
        )
    except (GatewayUnavailable, OutcomeUnknown) as exc:
        definitive = isinstance(exc, GatewayUnavailable)
        log_event(
            events.REFUND_UNKNOWN if not definitive else events.REFUND_FAILED,
            level=logging.WARNING,
            order_id=refund.order_id,
            refund_id=refund.pk,
            amount=str(refund.amount),
            reason=str(exc)[:200],
        )
        if definitive and raise_unavailable:
            retry_after = exc.retry_after if isinstance(exc, CircuitOpen) else 30
            raise PaymentUnavailable(headers={"Retry-After": str(retry_after)}) from exc
        return "unknown"
    write_durably(lambda: _refund_complete(refund=refund, gateway_refund_id=result.refund_id))
    return "succeeded"


def _refund_complete(*, refund: Refund, gateway_refund_id: str) -> bool:
    """Mark a pending refund succeeded and, for a requested one, the order refunded with its
    stock back; return False when another process completed it first."""
    with transaction.atomic():
        now = timezone.now()
        completed = Refund.objects.filter(pk=refund.pk, status=Refund.Status.PENDING).update(
            status=Refund.Status.SUCCEEDED, gateway_refund_id=gateway_refund_id, completed_at=now
        )
        if not completed:
            return False
        order_id = refund.order_id
        if refund.reason == Refund.Reason.REQUESTED:
            Order.objects.filter(pk=order_id, status=Order.Status.PAID).update(
                status=Order.Status.REFUNDED, updated_at=now
            )
            for item in OrderItem.objects.filter(order_id=order_id).order_by("product_id"):
                product_stock_increment(
                    product_id=item.product_id,
                    quantity=item.quantity,
                    reason=StockMovement.Reason.REFUND,
                    order_id=order_id,
                )
        metadata = {"order_id": order_id, "reason": refund.reason}
        transaction.on_commit(lambda: _refund_record(refund=refund, metadata=metadata))
    return True


def _refund_record(*, refund: Refund, metadata: dict) -> None:
    record_metric(REFUNDS_PER_DAY, 1, metadata)
    log_event(
        events.REFUND_MADE,
        level=logging.WARNING if refund.reason == Refund.Reason.RELEASED else logging.INFO,
        refund_id=refund.pk,
        amount=str(refund.amount),
        **metadata,
    )
