"""Notifiers: one small module per receiver, each owning its payload (SPEC §3.7).

`notification_send` picks the module by the notifier's kind. A failure raises
NotifierError with a message safe to print: a host, never a URL path, key or password.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from retailctl.core.rules import NotifierConfig

FIRING, RESOLVED = "firing", "resolved"


class NotifierError(Exception):
    """A receiver refused or could not be reached; the transition stays owed."""


@dataclass(frozen=True)
class Notification:
    """One transition of one rule, as every receiver is told it."""

    rule: str
    state: str  # firing | resolved
    severity: str
    value: float | None
    since: datetime
    summary: str
    repeat: bool = False
    repeat_interval: timedelta = timedelta(hours=4)

    @property
    def title(self) -> str:
        again = " (still)" if self.repeat else ""
        return f"[{self.state.upper()}{again}] {self.rule} ({self.severity})"

    def to_document(self) -> dict[str, Any]:
        """Return SPEC §3.7's webhook document."""
        return {
            "rule": self.rule,
            "state": self.state,
            "severity": self.severity,
            "value": self.value,
            "since": self.since.isoformat(),
            "summary": self.summary,
        }


def notification_send(config: NotifierConfig, notification: Notification) -> None:
    """Deliver one notification through the notifier `config` names; raise NotifierError."""
    module = import_module(f"retailctl.core.notify.{config.kind}")
    module.send(notification, config)
