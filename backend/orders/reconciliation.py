"""Reconciliation: settle every payment and refund whose outcome a timeout or a crash left open.

The only way to learn an unknown outcome is to ask again with the same idempotency key: the
gateway answers the first charge (or refund) again, or carries it out now if it never
arrived. Each replay settles through the same conditional writes as a live checkout, so a
run is idempotent, safe beside the live backend and beside another run.
"""

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from catalog.models import StockMovement
from orders.models import Order
from orders.refunds import refund_send
from orders.selectors import refunds_pending
from orders.services import order_fail, order_settle
from orders.transactions import write_durably
from payments.models import Payment
from payments.selectors import payments_open
from payments.services import payment_gateway, payment_replay
from retail import events
from retail.logging import log_event
from retail.metrics import record_metric

# One row per payment or refund a reconciliation settled (value 1; metadata says which).
PAYMENT_RECONCILED = "payment_reconciled"


@dataclass
class ReconcileReport:
    """What a run settled, and what still has no answer."""

    charges: Counter = field(default_factory=Counter)  # outcome -> payments
    refunds: Counter = field(default_factory=Counter)  # outcome -> refunds
    still_open_payments: list[int] = field(default_factory=list)
    still_open_refunds: list[int] = field(default_factory=list)


def payments_reconcile(*, older_than: timedelta) -> ReconcileReport:
    """Replay every open charge and pending refund older than `older_than`, and settle them."""
    report = ReconcileReport()
    gateway = payment_gateway(guarded=False)
    for payment in payments_open(older_than=older_than):
        outcome = payment_resolve(payment=payment)
        report.charges[outcome] += 1
        if outcome == "unknown":
            report.still_open_payments.append(payment.pk)
    for refund in refunds_pending(older_than=older_than):
        charge_id = (
            Payment.objects.filter(order_id=refund.order_id, status=Payment.Status.SUCCEEDED)
            .values_list("gateway_charge_id", flat=True)
            .first()
        )
        outcome = refund_send(refund=refund, charge_id=charge_id or "", gateway=gateway)
        report.refunds[outcome] += 1
        _reconciled_record(kind="refund", outcome=outcome, order_id=refund.order_id, id=refund.pk)
        if outcome == "unknown":
            report.still_open_refunds.append(refund.pk)
    return report


def payment_resolve(*, payment: Payment) -> str:
    """Replay one open payment's charge and settle its order; return the outcome.

    `succeeded` (order paid, or refunded at once if it was released), `declined`, or
    `unknown` (no answer yet: the order keeps its stock).
    """
    payment_replay(payment=payment)
    order = Order.objects.get(pk=payment.order_id)
    order_settle(order=order, payment=payment, gateway=payment_gateway(guarded=False))
    outcome = payment.status if payment.status != Payment.Status.PENDING else "unknown"
    _reconciled_record(kind="charge", outcome=outcome, order_id=order.pk, id=payment.pk)
    return outcome


def _reconciled_record(*, kind: str, outcome: str, order_id: int, id: int) -> None:
    record_metric(PAYMENT_RECONCILED, 1, {"kind": kind, "outcome": outcome, "order_id": order_id})
    log_event(
        events.PAYMENT_RECONCILED,
        level=logging.WARNING if outcome == "unknown" else logging.INFO,
        kind=kind,
        outcome=outcome,
        order_id=order_id,
        **{"payment_id" if kind == "charge" else "refund_id": id},
    )


def order_release_stale(*, older_than: timedelta) -> list[int]:
    """Settle every order left pending longer than `older_than`; return those released.

    A pending order is one whose payment outcome is open: its process died between
    reserve and settle, or the gateway did not answer. It is never released without first
    replaying its charge: a replay that succeeds pays the order instead; one that gets no
    answer leaves it pending (with its stock) for the next run.
    """
    released: list[int] = []
    cutoff_orders = Order.objects.filter(
        status=Order.Status.PENDING, created_at__lt=timezone.now() - older_than
    ).order_by("pk")
    for order in cutoff_orders.iterator():
        payment = Payment.objects.filter(order=order).first()
        if payment is not None and payment.status in Payment.OPEN_STATUSES:
            payment_resolve(payment=payment)
            order.refresh_from_db(fields=["status"])
        elif payment is not None and payment.status == Payment.Status.SUCCEEDED:
            # Charged, yet pending: no settle leaves this state, so a person must look.
            log_event(
                "order.inconsistent", level=logging.ERROR, order_id=order.pk, payment_id=payment.pk
            )
            continue
        elif write_durably(lambda order=order: _order_release(order=order)):
            order.status = Order.Status.PAYMENT_FAILED
        if order.status == Order.Status.PAYMENT_FAILED:
            released.append(order.pk)
            log_event(events.ORDER_STALE_RELEASED, level=logging.WARNING, order_id=order.pk)
    return released


def _order_release(*, order: Order) -> bool:
    # No open payment: nothing can have been charged for this order.
    with transaction.atomic():
        return order_fail(order=order, reason=StockMovement.Reason.STALE_RELEASE)
