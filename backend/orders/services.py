"""Checkout and refunds: short transactions around a payment call that holds no lock.

Checkout is reserve → charge → settle. The reservation takes the stock with guarded
UPDATEs and commits before the gateway is called, so no row lock is ever held while
waiting on the network; the settle transaction then records the outcome, giving the
stock back if the payment did not succeed.
"""

import secrets
from dataclasses import dataclass
from decimal import Decimal

from catalog.exceptions import OutOfStock, ProductNotFound
from catalog.selectors import product_prices
from catalog.services import product_stock_decrement, product_stock_increment
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from payments.gateways import GatewayUnavailable, payment_gateway
from payments.models import Payment
from payments.services import payment_charge, payment_create, payment_save_outcome
from retail.metrics import ORDERS_PER_DAY, REFUNDS_PER_DAY, record_metric

from orders.exceptions import OrderNotRefundable, PaymentUnavailable
from orders.models import Order, OrderItem, Refund
from orders.selectors import order_access_token_hash


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    payment: Payment
    access_token: str


def order_place(*, lines: list[OrderLine], payment_token: str) -> PlacedOrder:
    """Reserve stock, charge the payment, and record the outcome of a guest order."""
    order, payment, access_token = _order_reserve(lines=lines)
    payment_charge(payment=payment, payment_token=payment_token)
    _order_settle(order=order, payment=payment)
    return PlacedOrder(order=order, payment=payment, access_token=access_token)


def _order_reserve(*, lines: list[OrderLine]) -> tuple[Order, Payment, str]:
    products = product_prices(product_ids=[line.product_id for line in lines])
    for line in lines:
        if line.product_id not in products:
            raise ProductNotFound({"product_id": line.product_id, "message": "No such product."})
    total = sum((products[line.product_id].price * line.quantity for line in lines), Decimal("0"))
    access_token = secrets.token_urlsafe(32)
    with transaction.atomic():
        # Primary-key order: two orders touching the same products lock them in the same
        # sequence and cannot deadlock each other.
        for line in sorted(lines, key=lambda line: line.product_id):
            if not product_stock_decrement(product_id=line.product_id, quantity=line.quantity):
                product = products[line.product_id]
                raise OutOfStock(
                    {"product_id": product.pk, "sku": product.sku, "message": "Not enough stock."}
                )
        order = Order.objects.create(
            status=Order.Status.PENDING,
            total=total,
            access_token_hash=order_access_token_hash(access_token),
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
    with transaction.atomic():
        payment_save_outcome(payment=payment)
        if payment.status == Payment.Status.SUCCEEDED:
            now = timezone.now()
            Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
                status=Order.Status.PAID, paid_at=now, updated_at=now
            )
            transaction.on_commit(lambda: record_metric(ORDERS_PER_DAY, 1, {"order_id": order.pk}))
        else:
            _order_fail(order=order)
    order.refresh_from_db()


def _order_fail(*, order: Order) -> None:
    # The status guard makes the release happen once, even if a stale-order sweeper
    # raced this settle for the same order.
    released = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
        status=Order.Status.PAYMENT_FAILED, updated_at=timezone.now()
    )
    if released:
        for item in order.items.order_by("product_id"):
            product_stock_increment(product_id=item.product_id, quantity=item.quantity)


def order_refund(*, order_id: int, actor) -> Order:
    """Refund a paid order in full: gateway refund first, then status and stock."""
    refund, payment = _refund_claim(order_id=order_id, actor=actor)
    try:
        result = payment_gateway().refund(charge_id=payment.gateway_charge_id, amount=refund.amount)
    except GatewayUnavailable as exc:
        refund.delete()
        raise PaymentUnavailable(headers={"Retry-After": "30"}) from exc
    with transaction.atomic():
        now = timezone.now()
        Order.objects.filter(pk=order_id, status=Order.Status.PAID).update(
            status=Order.Status.REFUNDED, updated_at=now
        )
        Refund.objects.filter(pk=refund.pk).update(
            status=Refund.Status.SUCCEEDED, gateway_refund_id=result.refund_id, completed_at=now
        )
        for item in OrderItem.objects.filter(order_id=order_id).order_by("product_id"):
            product_stock_increment(product_id=item.product_id, quantity=item.quantity)
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
