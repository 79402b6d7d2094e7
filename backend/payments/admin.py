"""Admin of payments."""

from django.contrib import admin

from payments.models import Payment


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["id", "order", "amount", "status", "latency_ms", "created_at"]
    list_filter = ["status"]
    search_fields = ["gateway_charge_id", "idempotency_key"]
    readonly_fields = [f.name for f in Payment._meta.fields]
