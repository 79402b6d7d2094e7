"""The read model of `retail_metric`: daily rollups, and the totals of the rows prune removed.

`retail_metric` stays the source of truth. Database triggers (migration 0002) keep one
row per (metric type, UTC day, route, status class, log bucket) in step with every
INSERT, UPDATE and DELETE on `retail_metric`, whoever runs it, so a 7-day summary reads
a few thousand rollup rows instead of millions of raw ones. `retailctl prune` folds the
rows it deletes into `retail_metric_pruned` in the same transaction (migration 0004), so
lifetime totals (rollup + pruned) never go down. See docs/metrics-read-model.md.
"""

from django.db import models


class MetricRollup(models.Model):
    metric_type = models.CharField(max_length=64)
    day = models.DateField()
    # `route` from the metric's metadata, else its `path`; '' when neither is there.
    route = models.CharField(max_length=200, default="", db_default="")
    # '2xx', '4xx', '5xx'… from metadata `status_code`; '' when absent.
    status_class = models.CharField(max_length=3, default="", db_default="")
    # Log-spaced value bucket (relative accuracy 1%, as DDSketch); see retailctl.core.sketch.
    bucket = models.IntegerField()
    samples = models.BigIntegerField(default=0)
    value_sum = models.FloatField(default=0.0)

    class Meta:
        db_table = "retail_metric_rollup"
        constraints = [
            models.UniqueConstraint(
                fields=["metric_type", "day", "route", "status_class", "bucket"],
                name="retail_metric_rollup_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric_type} @ {self.day} bucket {self.bucket}"


class MetricPruned(models.Model):
    """Totals of the metric rows `retailctl prune` deleted, keyed as the Prometheus series need.

    Written only by prune, in the transaction that deletes the rows, so nothing is added
    to the metric INSERT path. Day and route are dropped: lifetime counters and the
    latency histogram need neither, and the table stays a few thousand rows for good.
    """

    metric_type = models.CharField(max_length=64)
    status_class = models.CharField(max_length=3, default="", db_default="")
    bucket = models.IntegerField()
    samples = models.BigIntegerField(default=0)
    value_sum = models.FloatField(default=0.0)

    class Meta:
        db_table = "retail_metric_pruned"
        constraints = [
            models.UniqueConstraint(
                fields=["metric_type", "status_class", "bucket"], name="retail_metric_pruned_key"
            )
        ]

    def __str__(self) -> str:
        return f"pruned {self.metric_type} {self.status_class} bucket {self.bucket}"


class MetricBatch(models.Model):
    """A batch of metric rows the writer process committed, by the token its client gave it.

    Written in the batch's own transaction (retail/writer_process.py). A client whose
    child died or went silent after it may have committed sends those rows again with
    the batch's token; the child skips them when the token is here, so a lost answer
    never writes a row twice. Only the writer process reads it; it deletes tokens a day
    old, long past any retry.
    """

    token = models.CharField(max_length=32, primary_key=True)
    written_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "retail_metric_batch"

    def __str__(self) -> str:
        return f"metric batch {self.token} @ {self.written_at:%Y-%m-%d %H:%M:%S}"
