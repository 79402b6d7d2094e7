"""Admin of the catalog."""

from django.contrib import admin

from catalog.models import Product, StockMovement


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock", "updated_at"]
    search_fields = ["sku", "name"]
    # Stock changes only through the guarded services, never a form's read-modify-write.
    readonly_fields = ["stock", "created_at", "updated_at"]


@admin.register(StockMovement)
class StockMovementAdmin(admin.ModelAdmin):
    list_display = ["id", "product", "delta", "reason", "order", "created_at"]
    list_filter = ["reason"]
    search_fields = ["product__sku"]
    # The ledger is an audit trail: it is appended to by the stock services only.
    readonly_fields = ["product", "delta", "reason", "order", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
