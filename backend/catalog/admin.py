"""Admin of the catalog."""

from django import forms
from django.contrib import admin

from catalog.models import Product, StockMovement
from catalog.services import product_stock_set

_EDITABLE_FIELDS = ["sku", "name", "price"]


class ProductAdminForm(forms.ModelForm):
    set_stock = forms.IntegerField(
        min_value=0,
        required=False,
        help_text="New absolute stock, recorded in the ledger as an adjustment. Blank: unchanged.",
    )

    class Meta:
        model = Product
        fields = _EDITABLE_FIELDS


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = ["sku", "name", "price", "stock", "updated_at"]
    search_fields = ["sku", "name"]
    # Stock changes only through the guarded services, never a form's read-modify-write.
    readonly_fields = ["stock", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        # A plain save() would write back the stock read when the form was opened,
        # undoing every sale made since: write only the edited columns.
        obj.save(update_fields=[*_EDITABLE_FIELDS, "updated_at"] if change else None)
        if form.cleaned_data.get("set_stock") is not None:
            product_stock_set(
                product=obj,
                stock=form.cleaned_data["set_stock"],
                reason=StockMovement.Reason.ADJUSTMENT,
            )


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
