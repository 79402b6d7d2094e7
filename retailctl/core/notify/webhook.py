"""Generic webhook: one JSON document per transition (SPEC §3.7)."""

from retailctl.core.notify import Notification
from retailctl.core.notify.http import post_json
from retailctl.core.rules import NotifierConfig


def payload(notification: Notification, config: NotifierConfig) -> dict:
    """Return `{"rule","state","severity","value","since","summary"}`."""
    return notification.to_document()


def send(notification: Notification, config: NotifierConfig) -> None:
    """POST the document to the configured URL."""
    post_json(config.options["url"], payload(notification, config), timeout=config.timeout)
