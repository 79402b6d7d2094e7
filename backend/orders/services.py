"""Checkout and refunds: short transactions around a payment call that holds no lock.

Checkout is reserve → charge → settle. The reservation takes the stock with guarded
UPDATEs and commits before the gateway is called, so no row lock is ever held while
waiting on the network; the settle transaction then records the outcome, giving the
stock back if the payment did not succeed.
"""

import logging
import os
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import DatabaseError, IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from catalog.exceptions import OutOfStock, ProductNotFound
from catalog.models import Product, StockMovement
from catalog.selectors import product_prices
from catalog.services import product_stock_decrement, product_stock_increment
from orders.exceptions import OrderNotRefundable, PaymentUnavailable
from orders.models import Order, OrderItem, Refund
from orders.selectors import order_access_token_hash
from payments.gateways import CircuitOpen, GatewayUnavailable, payment_gateway
from payments.models import Payment
from payments.services import (
    payment_abandon,
    payment_admission,
    payment_charge,
    payment_create,
    payment_save_outcome,
)
from retail.metrics import ORDERS_PER_DAY, REFUNDS_PER_DAY, STOCK_CONFLICTS, record_metric

logger = logging.getLogger(__name__)

# Server-side latency (ms) of each checkout turned away by an OPEN payment breaker:
# the evidence behind A2's fast-fail p99.
PAYMENT_FAST_FAIL = "payment_fast_fail"


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    payment: Payment
    access_token: str


def order_place(
    *, lines: list[OrderLine], payment_token: str, started: float | None = None
) -> PlacedOrder:
    """Reserve stock, charge the payment, and record the outcome of a guest order.

    An OPEN payment breaker turns the order away before anything is reserved;
    `started` (a `time.perf_counter()` stamp) dates the fast-fail latency it records.
    """
    started = time.perf_counter() if started is None else started
    try:
        with payment_admission():
            order, payment, access_token = _order_reserve(lines=lines)
            payment_charge(payment=payment, payment_token=payment_token)
    except CircuitOpen as exc:
        _fast_fail_record(started=started, retry_after=exc.retry_after)
        raise PaymentUnavailable(
            {"message": PaymentUnavailable.default_detail, "circuit": "open"},
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    _order_settle(order=order, payment=payment)
    return PlacedOrder(order=order, payment=payment, access_token=access_token)


def _fast_fail_record(*, started: float, retry_after: int) -> None:
    latency_ms = (time.perf_counter() - started) * 1000
    record_metric(
        PAYMENT_FAST_FAIL,
        latency_ms,
        {"reason": "circuit_open", "retry_after": retry_after, "pid": os.getpid()},
    )
    logger.info(
        "payment.fast_fail",
        extra={"event": "payment.fast_fail", "duration_ms": round(latency_ms, 3)},
    )


class _StockConflict(Exception):
    """The database guard rejected a stock decrement (CHECK, serialization, deadlock)."""

    def __init__(self, *, product, error: DatabaseError):
        super().__init__(str(error))
        self.product = product
        self.error = error

    @property
    def transient(self) -> bool:
        if isinstance(self.error, IntegrityError):
            return False
        sqlstate = getattr(self.error.__cause__, "sqlstate", None)
        # SQLite reports writer contention past its busy timeout as "database is locked".
        return sqlstate in _TRANSIENT_SQLSTATES or "database is locked" in str(self.error)


# serialization_failure, deadlock_detected: the transaction may simply be run again.
_TRANSIENT_SQLSTATES = {"40001", "40P01"}
_RESERVE_ATTEMPTS = 2


def _order_reserve(*, lines: list[OrderLine]) -> tuple[Order, Payment, str]:
    products = product_prices(product_ids=[line.product_id for line in lines])
    for line in lines:
        if line.product_id not in products:
            raise ProductNotFound({"product_id": line.product_id, "message": "No such product."})
    for attempt in range(1, _RESERVE_ATTEMPTS + 1):
        try:
            return _order_reserve_once(lines=lines, products=products)
        except _StockConflict as conflict:
            retry = conflict.transient and attempt < _RESERVE_ATTEMPTS
            _stock_conflict_record(conflict=conflict, attempt=attempt, retried=retry)
            if not retry:
                product = conflict.product
                raise OutOfStock(
                    {"product_id": product.pk, "sku": product.sku, "message": "Not enough stock."}
                ) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _stock_conflict_record(*, conflict: _StockConflict, attempt: int, retried: bool) -> None:
    product = conflict.product
    metadata = {
        "product_id": product.pk,
        "sku": product.sku,
        "error": type(conflict.error).__name__,
        "attempt": attempt,
        "retried": retried,
    }
    record_metric(STOCK_CONFLICTS, 1, metadata)
    logger.warning("stock.conflict", extra={"event": "stock.conflict", **metadata})


def _order_reserve_once(
    *, lines: list[OrderLine], products: dict[int, Product]
) -> tuple[Order, Payment, str]:
    total = sum((products[line.product_id].price * line.quantity for line in lines), Decimal("0"))
    access_token = secrets.token_urlsafe(32)
    with transaction.atomic():
        order = Order.objects.create(
            status=Order.Status.PENDING,
            total=total,
            access_token_hash=order_access_token_hash(access_token),
        )
        # Primary-key order: two orders touching the same products lock them in the same
        # sequence and cannot deadlock each other.
        for line in sorted(lines, key=lambda line: line.product_id):
            product = products[line.product_id]
            try:
                taken = product_stock_decrement(
                    product_id=line.product_id, quantity=line.quantity, order_id=order.pk
                )
            except DatabaseError as exc:
                raise _StockConflict(product=product, error=exc) from exc
            if not taken:
                raise OutOfStock(
                    {"product_id": product.pk, "sku": product.sku, "message": "Not enough stock."}
                )
        OrderItem.objects.bulk_create(
            OrderItem(
                order=order,
                product_id=line.product_id,
                quantity=line.quantity,
                unit_price=products[line.product_id].price,
            )
            for line in lines
        )
        payment = payment_create(order=order)
    return order, payment, access_token


def _order_settle(*, order: Order, payment: Payment) -> None:
    released_refund: Refund | None = None
    with transaction.atomic():
        payment_save_outcome(payment=payment)
        if payment.status == Payment.Status.SUCCEEDED:
            now = timezone.now()
            paid = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
                status=Order.Status.PAID, paid_at=now, updated_at=now
            )
            if paid:
                transaction.on_commit(
                    lambda: record_metric(ORDERS_PER_DAY, 1, {"order_id": order.pk})
                )
            else:
                # The stale-order sweeper released this order while its charge was in
                # flight: the stock is back on sale, so the money goes back too. The
                # claim commits first; the gateway is called outside the transaction.
                released_refund = Refund.objects.create(order=order, amount=payment.amount)
        else:
            _order_fail(order=order, reason=StockMovement.Reason.PAYMENT_FAILED)
    if released_refund is not None:
        _refund_after_release(refund=released_refund, payment=payment)
    order.refresh_from_db()


def _refund_after_release(*, refund: Refund, payment: Payment) -> None:
    """Refund a charge that succeeded for an order released meanwhile (see _order_settle)."""
    event = {"order_id": refund.order_id, "charge_id": payment.gateway_charge_id}
    try:
        result = payment_gateway().refund(charge_id=payment.gateway_charge_id, amount=refund.amount)
    except GatewayUnavailable:
        # The refund row stays pending: the record a person settles the charge from.
        logger.exception(
            "payment.refund_after_release_failed",
            extra={"event": "payment.refund_after_release_failed", "refund_id": refund.pk, **event},
        )
        return
    _refund_complete(refund=refund, gateway_refund_id=result.refund_id)
    record_metric(REFUNDS_PER_DAY, 1, {"order_id": refund.order_id, "reason": "released"})
    logger.warning(
        "payment.refunded_after_release",
        extra={
            "event": "payment.refunded_after_release",
            "gateway_refund_id": result.refund_id,
            **event,
        },
    )


def _refund_complete(*, refund: Refund, gateway_refund_id: str) -> None:
    Refund.objects.filter(pk=refund.pk).update(
        status=Refund.Status.SUCCEEDED,
        gateway_refund_id=gateway_refund_id,
        completed_at=timezone.now(),
    )


def _order_fail(*, order: Order, reason: str) -> bool:
    """Mark a pending order failed and give its stock back; return whether it was pending."""
    # The status guard makes the release happen once, even if a stale-order sweeper
    # raced this settle for the same order.
    released = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
        status=Order.Status.PAYMENT_FAILED, updated_at=timezone.now()
    )
    if released:
        for item in OrderItem.objects.filter(order_id=order.pk).order_by("product_id"):
            product_stock_increment(
                product_id=item.product_id, quantity=item.quantity, reason=reason, order_id=order.pk
            )
    return bool(released)


def order_release_stale(*, older_than: timedelta) -> list[int]:
    """Fail every order left pending longer than `older_than` and give its stock back.

    A pending order is one whose process died between reserve and settle. Each order is
    released in its own transaction behind the same status guard as a failed payment,
    so concurrent runs (two cron jobs, a live settle) release it exactly once.
    """
    cutoff = timezone.now() - older_than
    stale = Order.objects.filter(status=Order.Status.PENDING, created_at__lt=cutoff)
    released: list[int] = []
    for order in stale.order_by("pk").iterator():
        with transaction.atomic():
            if not _order_fail(order=order, reason=StockMovement.Reason.STALE_RELEASE):
                continue
            keys = payment_abandon(order=order)
        released.append(order.pk)
        # The charge may have reached the gateway: the keys let an operator reconcile.
        logger.warning(
            "order.stale_released",
            extra={"event": "order.stale_released", "order_id": order.pk, "idempotency_keys": keys},
        )
    return released


def order_refund(*, order_id: int, actor) -> Order:
    """Refund a paid order in full: gateway refund first, then status and stock."""
    refund, payment = _refund_claim(order_id=order_id, actor=actor)
    try:
        result = payment_gateway().refund(charge_id=payment.gateway_charge_id, amount=refund.amount)
    except GatewayUnavailable as exc:
        refund.delete()
        raise PaymentUnavailable(headers={"Retry-After": "30"}) from exc
    with transaction.atomic():
        Order.objects.filter(pk=order_id, status=Order.Status.PAID).update(
            status=Order.Status.REFUNDED, updated_at=timezone.now()
        )
        _refund_complete(refund=refund, gateway_refund_id=result.refund_id)
        for item in OrderItem.objects.filter(order_id=order_id).order_by("product_id"):
            product_stock_increment(
                product_id=item.product_id,
                quantity=item.quantity,
                reason=StockMovement.Reason.REFUND,
                order_id=order_id,
            )
        transaction.on_commit(lambda: record_metric(REFUNDS_PER_DAY, 1, {"order_id": order_id}))
    return Order.objects.get(pk=order_id)


def _refund_claim(*, order_id: int, actor) -> tuple[Refund, Payment]:
    """Claim the order's one refund slot; the unique key turns a concurrent second claim away."""
    with transaction.atomic():
        order = Order.objects.filter(pk=order_id).first()
        if order is None:
            raise Http404
        if order.status != Order.Status.PAID:
            raise OrderNotRefundable()
        payment = order.payments.get(status=Payment.Status.SUCCEEDED)
        try:
            with transaction.atomic():
                refund = Refund.objects.create(order=order, amount=order.total, created_by=actor)
        except IntegrityError:
            raise OrderNotRefundable("A refund of this order is already under way.") from None
    return refund, payment
