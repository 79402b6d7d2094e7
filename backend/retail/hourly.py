"""Hourly stats of complete hours: the anomaly detector's cache (retailctl.core.series).

A complete hour's stats are computed once from the raw rows and kept here, so judging an
hour against six weeks of the same hour reads one hour of raw rows, not seven. Only
`retailctl` and the staff pages write it (insert or ignore); docs/anomaly-detection.md
says what a cached hour does not see (rows written long after the hour ended).
"""

from django.db import models


class MetricHourly(models.Model):
    hour = models.DateTimeField(unique=True)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    orders = models.BigIntegerField(default=0)
    # Latency log-bucket counts ({"bucket": requests}), as retailctl.core.sketch buckets.
    latency = models.JSONField(default=dict)
    computed_at = models.DateTimeField()

    class Meta:
        db_table = "retail_metric_hourly"

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.requests} requests"
