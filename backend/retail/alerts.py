"""Alert state: one row per alert rule, written by `retailctl alert` (SPEC §3.7).

The read model in retailctl.core.alerts is the only writer; this model exists so that
`migrate` creates the table on SQLite and PostgreSQL alike and the admin can show it.
Every change is a compare-and-set on `version`, so two overlapping cron runs notify a
transition once (docs/alerting.md).
"""

from django.db import models

FIRING, RESOLVED = "firing", "resolved"


class Alert(models.Model):
    rule = models.CharField(max_length=100, unique=True)
    state = models.CharField(
        max_length=10, choices=[(FIRING, FIRING), (RESOLVED, RESOLVED)], default=RESOLVED
    )
    severity = models.CharField(max_length=10, default="warning")
    # When the current state began: firing since, or resolved since.
    since = models.DateTimeField()
    # When the condition started to hold while `for:` still holds the rule back.
    pending_since = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    summary = models.CharField(max_length=500, default="", blank=True)
    # The evidence of the last evaluation; an anomaly rule's judged hour, kept so that the
    # runs after the first one of an hour reuse its verdict.
    detail = models.JSONField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField()
    last_notified_at = models.DateTimeField(null=True, blank=True)
    # The transition still owed to notifiers that failed: event, time, pending names, errors.
    outbox = models.JSONField(null=True, blank=True)
    # Until when one run owns the outbox's delivery (a crashed run's claim runs out).
    claimed_until = models.DateTimeField(null=True, blank=True)
    version = models.IntegerField(default=0)

    class Meta:
        db_table = "retail_alert"
        ordering = ["rule"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=[FIRING, RESOLVED]), name="retail_alert_state_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule}: {self.state}"
