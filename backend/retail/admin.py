"""Admin of metric rows."""

from django.contrib import admin

from retail.models import Alert, Metric


@admin.register(Metric)
class MetricAdmin(admin.ModelAdmin):
    list_display = ["metric_type", "value", "recorded_at"]
    list_filter = ["metric_type"]
    date_hierarchy = "recorded_at"


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Alert state as `retailctl alert` left it (read it here; the CLI writes it)."""

    list_display = ["rule", "state", "severity", "since", "last_value", "last_notified_at"]
    list_filter = ["state", "severity"]
