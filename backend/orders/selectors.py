"""Reads of orders: the order as its reader sees it, with the access rule of SPEC §3.1."""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.http import Http404
from django.utils import timezone

from orders.models import Order, Refund


def order_access_token_hash(token: str) -> str:
    """Hash an order access token for storage and comparison."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class OrderLineInfo:
    product_id: int
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class PaymentInfo:
    status: str
    amount: Decimal
    latency_ms: float | None


@dataclass(frozen=True)
class RefundInfo:
    status: str
    amount: Decimal


@dataclass(frozen=True)
class OrderInfo:
    """An order as the API shows it: lines, its payment and its refund, if any."""

    id: int
    status: str
    total: Decimal
    currency: str
    items: list[OrderLineInfo]
    payment: PaymentInfo | None
    refund: RefundInfo | None
    created_at: datetime
    paid_at: datetime | None


def order_info_of(order: Order, *, lines: list[OrderLineInfo], payment, refund) -> OrderInfo:
    """Return the view of an order from objects in hand (checkout answers without a re-read)."""
    return OrderInfo(
        id=order.pk,
        status=order.status,
        total=order.total,
        currency=order.currency,
        items=lines,
        payment=payment and PaymentInfo(payment.status, payment.amount, payment.latency_ms),
        refund=refund and RefundInfo(refund.status, refund.amount),
        created_at=order.created_at,
        paid_at=order.paid_at,
    )


def order_info(*, order_id: int) -> OrderInfo:
    """Return the stored order with its lines, payment and refund, or raise Http404."""
    try:
        order = Order.objects.prefetch_related("items__product", "payments").get(pk=order_id)
    except Order.DoesNotExist:
        raise Http404 from None
    lines = [
        OrderLineInfo(
            item.product_id, item.product.sku, item.product.name, item.quantity, item.unit_price
        )
        for item in order.items.all()
    ]
    payments = sorted(order.payments.all(), key=lambda payment: payment.pk)
    refund = Refund.objects.filter(order_id=order.pk).first()
    return order_info_of(
        order, lines=lines, payment=payments[-1] if payments else None, refund=refund
    )


def order_info_for_reader(*, order_id: int, access_token: str | None, is_staff: bool) -> OrderInfo:
    """Return the order to staff or to the holder of its access token; 404 to anyone else.

    A wrong token and a missing order answer alike, so nobody learns which orders exist.
    """
    if not is_staff:
        stored = Order.objects.filter(pk=order_id).values_list("access_token_hash", flat=True)
        expected = stored.first()
        presented = order_access_token_hash(access_token or "")
        if not access_token or expected is None or not hmac.compare_digest(presented, expected):
            raise Http404
    return order_info(order_id=order_id)


def refunds_pending(*, older_than: timedelta) -> list[Refund]:
    """Return the refunds claimed but not completed, older than `older_than`, oldest first."""
    cutoff = timezone.now() - older_than
    pending = Refund.objects.filter(status=Refund.Status.PENDING, created_at__lte=cutoff)
    return list(pending.select_related("order").order_by("pk"))
