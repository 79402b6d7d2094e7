"""Admin of orders and refunds."""

from django.contrib import admin

from orders.models import Order, OrderItem, Refund


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0
    readonly_fields = ["product", "quantity", "unit_price"]
    can_delete = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "total", "created_at", "paid_at"]
    list_filter = ["status"]
    readonly_fields = ["status", "total", "currency", "access_token_hash", "created_at", "paid_at"]
    inlines = [OrderItemInline]


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "amount", "status", "created_at", "completed_at"]
    list_filter = ["status"]
    readonly_fields = ["order", "amount", "status", "gateway_refund_id", "created_by"]
