"""Orders, their lines and their refunds."""

from django.conf import settings
from django.db import models


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"
        PAYMENT_FAILED = "payment_failed"
        REFUNDED = "refunded"

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    # SHA-256 of the order's access token: the secret itself is shown once and never stored.
    access_token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="orders_status_created_idx"),
            models.Index(fields=["paid_at"], name="orders_paid_at_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(total__gte=0), name="orders_order_total_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "paid", "payment_failed", "refunded"]),
                name="orders_order_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk} ({self.status})"


class OrderItem(models.Model):
    order = models.ForeignKey(Order, related_name="items", on_delete=models.CASCADE)
    product = models.ForeignKey("catalog.Product", related_name="+", on_delete=models.PROTECT)
    quantity = models.IntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="orders_orderitem_quantity_positive"
            ),
            models.UniqueConstraint(
                fields=["order", "product"], name="orders_orderitem_one_line_per_product"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x product {self.product_id}"


class Refund(models.Model):
    class Status(models.TextChoices):
        # Claimed, the gateway's answer not recorded yet (in flight, unknown, or its process
        # died): a retry or reconcile_payments replays it with its idempotency key.
        PENDING = "pending"
        SUCCEEDED = "succeeded"

    class Reason(models.TextChoices):
        REQUESTED = "requested"
        # The charge succeeded for an order released meanwhile: the money goes back.
        RELEASED = "released"

    # One refund per order: the unique key is what stops a double refund under a race.
    order = models.OneToOneField(Order, related_name="refund", on_delete=models.PROTECT)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(
        max_length=20, choices=Reason.choices, default=Reason.REQUESTED, db_default=Reason.REQUESTED
    )
    # Sent with the refund and every replay of it, so the gateway refunds it at most once.
    idempotency_key = models.CharField(max_length=64, unique=True)
    gateway_refund_id = models.CharField(max_length=100, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["completed_at"], name="orders_refund_completed_idx"),
            models.Index(fields=["status", "created_at"], name="orders_refund_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "succeeded"]),
                name="orders_refund_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Refund of order #{self.order_id} ({self.status})"
