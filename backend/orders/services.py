"""Checkout: short transactions around a gateway call that holds no lock (refunds: orders.refunds).

Checkout is reserve → charge → settle. The reservation takes the stock with guarded
UPDATEs and commits before the gateway is called, so no row lock is ever held while
waiting on the network; the settle transaction then records the outcome. A definitive
failure gives the stock back; an unknown outcome (timeout, lost connection) keeps the order
pending with its stock reserved until a replay of the charge tells (orders.reconciliation).

Every settle is a conditional UPDATE on the payment's status, so a checkout and
reconcile_payments may race on one payment and the money, the order and the stock still
move exactly once; and it is retried on a fresh database connection when the connection
was lost while the gateway answered (orders.transactions).
"""

import logging
import os
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    transaction,
)
from django.utils import timezone

from catalog.exceptions import OutOfStock, ProductNotFound
from catalog.models import Product, StockMovement
from catalog.selectors import product_prices
from catalog.services import product_stock_decrement, product_stock_increment
from orders.exceptions import PaymentUnavailable
from orders.models import Order, OrderItem, Refund
from orders.refunds import refund_open, refund_send
from orders.selectors import OrderInfo, OrderLineInfo, order_access_token_hash, order_info_of
from orders.transactions import write_durably
from payments.exceptions import CircuitOpen
from payments.gateways import PaymentGateway
from payments.models import Payment
from payments.services import (
    payment_admission,
    payment_charge,
    payment_create,
    payment_gateway,
    payment_record_outcome,
)
from retail import events
from retail.logging import log_event
from retail.metrics import ORDERS_PER_DAY, STOCK_CONFLICTS, record_metric

logger = logging.getLogger(__name__)

# Server-side latency (ms) of each checkout turned away by an OPEN payment breaker:
# the evidence behind A2's fast-fail p99.
PAYMENT_FAST_FAIL = "payment_fast_fail"
# One row per charge whose outcome the gateway did not tell (value 1).
PAYMENT_UNKNOWN_OUTCOME = "payment_unknown_outcome"


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class PlacedOrder:
    """A checkout's result: the order as it was settled, and its access token."""

    order: Order
    payment: Payment
    refund: Refund | None
    lines: list[OrderLineInfo]
    access_token: str

    @property
    def info(self) -> OrderInfo:
        """Return the order as the API shows it, from what this checkout holds (no re-read)."""
        return order_info_of(self.order, lines=self.lines, payment=self.payment, refund=self.refund)


def order_place(
    *, lines: list[OrderLine], payment_token: str, started: float | None = None
) -> PlacedOrder:
    """Reserve stock, charge the payment, and record the outcome of a guest order.

    Lines naming one product are added up into one, as a cart would. An OPEN payment
    breaker turns the order away before anything is reserved; `started` (a
    `time.perf_counter()` stamp) dates the fast-fail latency it records.
    """
    started = time.perf_counter() if started is None else started
    lines = _lines_merged(lines)
    try:
        with payment_admission():
            reservation = _order_reserve(lines=lines, payment_token=payment_token)
            payment_charge(payment=reservation.payment)
    except CircuitOpen as exc:
        _fast_fail_record(started=started, retry_after=exc.retry_after)
        raise PaymentUnavailable(
            {"message": PaymentUnavailable.default_detail, "circuit": "open"},
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    order, payment = reservation.order, reservation.payment
    _charge_log(order=order, payment=payment)
    refund = None
    try:
        refund = order_settle(order=order, payment=payment, gateway=payment_gateway())
    except (OperationalError, InterfaceError):
        # The outcome is known here but could not be stored: the order stays pending, the
        # client is told so (202), and reconcile_payments replays the charge to settle it.
        logger.exception(
            "order.settle_failed",
            extra={"event": "order.settle_failed", "order_id": order.pk, "payment_id": payment.pk},
        )
        order.status, payment.status = Order.Status.PENDING, Payment.Status.PENDING
    return PlacedOrder(
        order=order,
        payment=payment,
        refund=refund,
        lines=reservation.lines,
        access_token=reservation.token,
    )


def _lines_merged(lines: list[OrderLine]) -> list[OrderLine]:
    quantities: dict[int, int] = {}
    for line in lines:
        quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
    return [OrderLine(product_id, quantity) for product_id, quantity in quantities.items()]


def _fast_fail_record(*, started: float, retry_after: int) -> None:
    latency_ms = (time.perf_counter() - started) * 1000
    record_metric(
        PAYMENT_FAST_FAIL,
        latency_ms,
        {"reason": "circuit_open", "retry_after": retry_after, "pid": os.getpid()},
    )
    log_event(events.PAYMENT_FAST_FAIL, duration_ms=round(latency_ms, 3), retry_after=retry_after)


def _charge_log(*, order: Order, payment: Payment) -> None:
    outcome = {
        Payment.Status.SUCCEEDED: "succeeded",
        Payment.Status.DECLINED: "declined",
        Payment.Status.UNKNOWN: "unknown",
    }.get(payment.status, "failed")
    log_event(
        events.PAYMENT_CHARGE,
        level=logging.WARNING if outcome in ("failed", "unknown") else logging.INFO,
        order_id=order.pk,
        payment_id=payment.pk,
        amount=str(payment.amount),
        outcome=outcome,
        duration_ms=payment.latency_ms,
        reason=payment.failure_reason or None,
    )
    if outcome == "unknown":
        record_metric(PAYMENT_UNKNOWN_OUTCOME, 1, {"order_id": order.pk, "payment_id": payment.pk})


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


@dataclass(frozen=True)
class _Reservation:
    order: Order
    payment: Payment
    lines: list[OrderLineInfo]
    token: str


def _order_reserve(*, lines: list[OrderLine], payment_token: str) -> _Reservation:
    products = product_prices(product_ids=[line.product_id for line in lines])
    for line in lines:
        if line.product_id not in products:
            raise ProductNotFound({"product_id": line.product_id, "message": "No such product."})
    for attempt in range(1, _RESERVE_ATTEMPTS + 1):
        try:
            reservation = _order_reserve_once(
                lines=lines, products=products, payment_token=payment_token
            )
        except _StockConflict as conflict:
            retry = conflict.transient and attempt < _RESERVE_ATTEMPTS
            _stock_conflict_record(conflict=conflict, attempt=attempt, retried=retry)
            if not retry:
                _out_of_stock(conflict.product)
        else:
            order = reservation.order
            log_event(
                events.ORDER_PLACED,
                order_id=order.pk,
                amount=str(order.total),
                items=len(lines),
                payment_id=reservation.payment.pk,
            )
            return reservation
    raise AssertionError("unreachable: the last attempt returns or raises")


def _out_of_stock(product: Product):
    log_event(
        events.ORDER_OUT_OF_STOCK, level=logging.WARNING, product_id=product.pk, sku=product.sku
    )
    raise OutOfStock(
        {"product_id": product.pk, "sku": product.sku, "message": "Not enough stock."}
    ) from None


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
    log_event(events.STOCK_CONFLICT, level=logging.WARNING, **metadata)


def _order_reserve_once(
    *, lines: list[OrderLine], products: dict[int, Product], payment_token: str
) -> _Reservation:
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
                _out_of_stock(product)
        OrderItem.objects.bulk_create(
            OrderItem(
                order=order,
                product_id=line.product_id,
                quantity=line.quantity,
                unit_price=products[line.product_id].price,
            )
            for line in lines
        )
        payment = payment_create(order=order, payment_token=payment_token)
    infos = [
        OrderLineInfo(
            line.product_id,
            products[line.product_id].sku,
            products[line.product_id].name,
            line.quantity,
            products[line.product_id].price,
        )
        for line in lines
    ]
    return _Reservation(order=order, payment=payment, lines=infos, token=access_token)


def order_settle(*, order: Order, payment: Payment, gateway: PaymentGateway) -> Refund | None:
    """Record a charge's outcome and move the order and its stock by it (sets both in place).

    Succeeded: the order is paid — or, if it was released meanwhile, the charge is refunded
    at once through `gateway`. Declined or failed: the order fails and its stock comes back.
    Unknown: the order stays pending. Returns the refund of a released order's charge.
    """
    status, paid_at, refund = write_durably(
        lambda: _order_settle_once(order=order, payment=payment)
    )
    order.status, order.paid_at = status, paid_at
    if refund is not None:
        try:
            refund_send(refund=refund, charge_id=payment.gateway_charge_id, gateway=gateway)
            refund.refresh_from_db()
        except (OperationalError, InterfaceError):
            # The claim is stored: reconcile_payments replays and completes it.
            logger.exception(
                "refund.complete_failed",
                extra={"event": "refund.complete_failed", "refund_id": refund.pk},
            )
    return refund


def _order_settle_once(*, order: Order, payment: Payment):
    with transaction.atomic():
        if not payment_record_outcome(payment=payment):
            # Settled by another process (a reconciliation, or the checkout it raced).
            stored = Order.objects.values_list("status", "paid_at").get(pk=order.pk)
            return (*stored, None)
        if payment.status == Payment.Status.SUCCEEDED:
            now = timezone.now()
            paid = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
                status=Order.Status.PAID, paid_at=now, updated_at=now
            )
            if paid:
                transaction.on_commit(lambda: _paid_record(order=order, payment=payment))
                return Order.Status.PAID, now, None
            # Released while its charge was in flight: the stock is back on sale, so the
            # money goes back too. The claim commits first; the refund call comes after.
            refund = refund_open(order=order, reason=Refund.Reason.RELEASED, actor=None)
            stored = Order.objects.values_list("status", "paid_at").get(pk=order.pk)
            return (*stored, refund)
        if payment.status in Payment.OPEN_STATUSES:
            transaction.on_commit(
                lambda: log_event(
                    events.ORDER_PENDING,
                    level=logging.WARNING,
                    order_id=order.pk,
                    payment_id=payment.pk,
                )
            )
            return Order.Status.PENDING, None, None
        order_fail(order=order, reason=StockMovement.Reason.PAYMENT_FAILED)
        transaction.on_commit(
            lambda: log_event(
                events.ORDER_PAYMENT_FAILED,
                level=logging.WARNING,
                order_id=order.pk,
                payment_id=payment.pk,
                outcome=payment.status,
            )
        )
        return Order.Status.PAYMENT_FAILED, None, None


def _paid_record(*, order: Order, payment: Payment) -> None:
    record_metric(ORDERS_PER_DAY, 1, {"order_id": order.pk})
    log_event(
        events.ORDER_PAID, order_id=order.pk, payment_id=payment.pk, amount=str(payment.amount)
    )


def order_fail(*, order: Order, reason: str) -> bool:
    """Mark a pending order failed and give its stock back; return whether it was pending."""
    # The status guard makes the release happen once, even if two settles race.
    released = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
        status=Order.Status.PAYMENT_FAILED, updated_at=timezone.now()
    )
    if released:
        for item in OrderItem.objects.filter(order_id=order.pk).order_by("product_id"):
            product_stock_increment(
                product_id=item.product_id, quantity=item.quantity, reason=reason, order_id=order.pk
            )
    return bool(released)
