"""PagerDuty Events API v2: trigger on firing, resolve on resolved, one stable dedup_key.

The dedup_key is the rule's name, so a repeat notification updates the open incident
instead of opening another, and the resolve closes it.
"""

import socket

from retailctl.core.notify import FIRING, Notification
from retailctl.core.notify.http import post_json
from retailctl.core.rules import NotifierConfig

# PagerDuty's payload.severity values: critical, error, warning, info.
_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def dedup_key(notification: Notification) -> str:
    """Return the key PagerDuty groups one rule's trigger and resolve under."""
    return f"retail-observability/{notification.rule}"


def payload(notification: Notification, config: NotifierConfig) -> dict:
    """Return the Events API v2 event."""
    event = {
        "routing_key": config.options["routing_key"],
        "event_action": "trigger" if notification.state == FIRING else "resolve",
        "dedup_key": dedup_key(notification),
    }
    if notification.state == FIRING:
        event["payload"] = {
            "summary": f"{notification.rule}: {notification.summary}"[:1024],
            "source": config.options.get("source") or socket.gethostname(),
            "severity": _SEVERITY[notification.severity],
            "timestamp": notification.since.isoformat(),
            "component": "retail-observability",
            "custom_details": notification.to_document(),
        }
    return event


def send(notification: Notification, config: NotifierConfig) -> None:
    """POST the event to the Events API (PagerDuty answers 202)."""
    post_json(config.options["url"], payload(notification, config), timeout=config.timeout)
