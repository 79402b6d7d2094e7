"""Slack incoming webhook: `text` (the notification fallback) plus Block Kit sections."""

from retailctl.core.notify import FIRING, Notification
from retailctl.core.notify.http import post_json
from retailctl.core.rules import NotifierConfig

_ICONS = {FIRING: ":rotating_light:", "resolved": ":white_check_mark:"}


def _escape(text: str) -> str:
    # Slack's mrkdwn reserves these three characters (api.slack.com/reference/surfaces/formatting).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(notification: Notification, config: NotifierConfig) -> dict:
    """Return the incoming-webhook JSON: `text`, and `blocks` with the details."""
    title = f"{_ICONS.get(notification.state, '')} {notification.title}".strip()
    value = "n/a" if notification.value is None else f"{notification.value:g}"
    fields = [
        {"type": "mrkdwn", "text": f"*State*\n{notification.state}"},
        {"type": "mrkdwn", "text": f"*Severity*\n{notification.severity}"},
        {"type": "mrkdwn", "text": f"*Value*\n{value}"},
        {"type": "mrkdwn", "text": f"*Since*\n{notification.since:%Y-%m-%d %H:%M} UTC"},
    ]
    return {
        "text": _escape(f"{title}: {notification.summary}"),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _escape(notification.summary)}},
            {"type": "section", "fields": fields},
        ],
    }


def send(notification: Notification, config: NotifierConfig) -> None:
    """POST the payload to the incoming-webhook URL (Slack answers 200 `ok`)."""
    post_json(config.options["url"], payload(notification, config), timeout=config.timeout)
