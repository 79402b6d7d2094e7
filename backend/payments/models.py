"""Payment attempts against the payment gateway."""

from django.db import models


class Payment(models.Model):
    class Status(models.TextChoices):
        # Reserved, the charge not answered yet (in flight, or its process died).
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        DECLINED = "declined"
        FAILED = "failed"
        REJECTED_OPEN_CIRCUIT = "rejected_open_circuit"
        # The gateway was asked but did not answer: reconcile_payments replays the charge.
        UNKNOWN = "unknown"

    # Statuses whose charge may still be replayed, and which only a settle may leave.
    OPEN_STATUSES = (Status.PENDING, Status.UNKNOWN)

    order = models.ForeignKey("orders.Order", related_name="payments", on_delete=models.CASCADE)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.PENDING)
    # Sent with every charge and every replay of it, so the gateway charges it at most once.
    idempotency_key = models.CharField(max_length=64, unique=True)
    # The customer's payment token, kept only while the outcome is open so that
    # reconcile_payments can replay the very same charge; erased once it is settled.
    replay_token = models.CharField(max_length=200, blank=True, default="", db_default="")
    gateway_charge_id = models.CharField(max_length=100, blank=True, default="")
    latency_ms = models.FloatField(null=True, blank=True)
    failure_reason = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="payments_status_created_idx")
        ]
        constraints = [
            # One charge per order, ever: a checkout opens exactly one payment, and every
            # retry replays its idempotency key.
            models.UniqueConstraint(fields=["order"], name="payments_one_payment_per_order"),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=[
                        "pending",
                        "succeeded",
                        "declined",
                        "failed",
                        "rejected_open_circuit",
                        "unknown",
                    ]
                ),
                name="payments_payment_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Payment of order #{self.order_id} ({self.status})"
