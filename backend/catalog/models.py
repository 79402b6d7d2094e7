"""Products, their stock, and the ledger of every stock change."""

from django.db import models


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    # Only the guarded UPDATE in catalog.services changes stock; the CHECK constraint
    # is the last line of defence against an oversell.
    stock = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(stock__gte=0), name="catalog_product_stock_non_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(price__gte=0), name="catalog_product_price_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class StockMovement(models.Model):
    """One change of one product's stock, written in the transaction that made it.

    A product's stock always equals the sum of its movements: that is the audit of A1.
    """

    class Reason(models.TextChoices):
        SEED = "seed"
        SALE = "sale"
        PAYMENT_FAILED = "payment_failed"
        STALE_RELEASE = "stale_release"
        REFUND = "refund"
        ADJUSTMENT = "adjustment"

    product = models.ForeignKey(Product, related_name="movements", on_delete=models.PROTECT)
    delta = models.IntegerField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    # The ledger outlives nothing it points at: an order with movements cannot be deleted.
    order = models.ForeignKey(
        "orders.Order",
        null=True,
        blank=True,
        related_name="stock_movements",
        on_delete=models.PROTECT,
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["product", "id"], name="catalog_movement_product_idx")]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(delta=0), name="catalog_stockmovement_delta_non_zero"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.delta:+d} {self.product_id} ({self.reason})"
