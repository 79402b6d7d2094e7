"""Alertmanager: POST to `/api/v2/alerts`, as Prometheus does, so its routes and silences apply.

Alertmanager resolves a firing alert by itself once its `endsAt` passes; a firing alert
here ends two repeat intervals from now (each repeat notification moves it on), and a
resolved one ends at the moment it resolved.
"""

from datetime import UTC, datetime

from retailctl.core.notify import FIRING, Notification
from retailctl.core.notify.http import post_json
from retailctl.core.rules import NotifierConfig


def payload(notification: Notification, config: NotifierConfig, *, ends_at: datetime) -> list:
    """Return the postableAlerts list of Alertmanager's API v2 (one alert)."""
    alert = {
        "labels": {
            "alertname": notification.rule,
            "severity": notification.severity,
            "service": "retail-observability",
        },
        "annotations": {
            "summary": notification.summary,
            "value": "" if notification.value is None else f"{notification.value:g}",
        },
        "startsAt": notification.since.isoformat(),
        "endsAt": ends_at.isoformat(),
    }
    return [alert]


def send(notification: Notification, config: NotifierConfig) -> None:
    """POST the alert to `<url>/api/v2/alerts`."""
    if notification.state == FIRING:
        ends_at = datetime.now(UTC) + 2 * notification.repeat_interval
    else:
        ends_at = notification.since
    url = config.options["url"].rstrip("/") + "/api/v2/alerts"
    post_json(url, payload(notification, config, ends_at=ends_at), timeout=config.timeout)
