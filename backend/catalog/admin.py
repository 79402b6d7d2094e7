"""Admin of the catalog."""

from django.contrib import admin

from catalog.models import Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock", "updated_at"]
    search_fields = ["sku", "name"]
    # Stock changes only through the guarded services, never a form's read-modify-write.
    readonly_fields = ["stock", "created_at", "updated_at"]
