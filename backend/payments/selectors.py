"""Reads of payments."""

from datetime import timedelta

from django.utils import timezone

from payments.models import Payment


def payments_open(*, older_than: timedelta) -> list[Payment]:
    """Return the payments whose outcome is still open and older than `older_than`, oldest first."""
    cutoff = timezone.now() - older_than
    open_payments = Payment.objects.filter(status__in=Payment.OPEN_STATUSES, created_at__lte=cutoff)
    return list(open_payments.order_by("pk"))
