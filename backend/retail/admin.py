"""Admin of metric rows."""

from django.contrib import admin

from retail.models import Metric


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = ["metric_type", "value", "recorded_at"]
    list_filter = ["metric_type"]
    date_hierarchy = "recorded_at"
