"""Metric rows: the database-backed metrics of the ADR (SPEC §3.3)."""

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class Metric(models.Model):
    metric_type = models.CharField(max_length=64, db_index=True)
    value = models.FloatField()
    # Nullable and defaulted in the database: other tools insert rows with plain SQL.
    metadata = models.JSONField(default=dict, blank=True, null=True)
    recorded_at = models.DateTimeField(default=timezone.now, db_default=Now(), db_index=True)

    class Meta:
        db_table = "retail_metric"
        ordering = ["-recorded_at"]
        indexes = [
            models.Index(fields=["metric_type", "recorded_at"], name="retail_metric_type_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.metric_type}={self.value} @ {self.recorded_at:%Y-%m-%d %H:%M:%S}"


from retail.alerts import Alert  # noqa: E402,F401  (alert state written by `retailctl alert`)
from retail.hourly import MetricHourly  # noqa: E402,F401  (the anomaly detector's hour cache)

# The read-model tables, and the writer process's batch tokens.
from retail.rollups import MetricBatch, MetricPruned, MetricRollup  # noqa: E402,F401
