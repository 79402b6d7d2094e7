"""Reads of orders, with the access rule of SPEC §3.1."""

import hashlib
import hmac

from django.http import Http404

from orders.models import Order


def order_access_token_hash(token: str) -> str:
    """Hash an order access token for storage and comparison."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _order_with_details(order_id: int) -> Order:
    try:
        return Order.objects.prefetch_related("items__product", "payments").get(pk=order_id)
    except Order.DoesNotExist:
        raise Http404 from None


def order_get_for_reader(*, order_id: int, access_token: str | None, is_staff: bool) -> Order:
    """Return the order to staff or to the holder of its access token; 404 to anyone else.

    A wrong token and a missing order answer alike, so nobody learns which orders exist.
    """
    order = _order_with_details(order_id)
    if is_staff:
        return order
    presented = order_access_token_hash(access_token or "")
    if not access_token or not hmac.compare_digest(presented, order.access_token_hash):
        raise Http404
    return order


def order_get(*, order_id: int) -> Order:
    """Return the order with its lines and payments, or raise Http404."""
    return _order_with_details(order_id)
