"""Payment attempts against the payment gateway."""

from django.db import models


class Payment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        DECLINED = "declined"
        FAILED = "failed"
        REJECTED_OPEN_CIRCUIT = "rejected_open_circuit"

    order = models.ForeignKey("orders.Order", related_name="payments", on_delete=models.CASCADE)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.PENDING)
    # Sent with every charge so a retried request can never charge twice.
    idempotency_key = models.CharField(max_length=64, unique=True)
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
            models.UniqueConstraint(
                fields=["order"],
                condition=models.Q(status="succeeded"),
                name="payments_one_success_per_order",
            ),
        ]

    def __str__(self) -> str:
        return f"Payment of order #{self.order_id} ({self.status})"
