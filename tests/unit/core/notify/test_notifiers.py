"""Each notifier's payload, checked on a real receiver on loopback against its documented format.

Webhook: SPEC §3.7's document. Slack: an incoming-webhook body (`text`, Block Kit `blocks`).
PagerDuty: an Events API v2 event (routing_key, event_action, dedup_key, payload with
summary/source/severity). Email: a message through a real SMTP server (aiosmtpd).
Alertmanager: the real binary's `/api/v2/alerts`, when it is installed.
"""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from retailctl.core.notify import Notification, NotifierError, notification_send
from retailctl.core.rules import NotifierConfig
from tests.support.receivers import ALERTMANAGER, alertmanager, http_receiver, smtp_receiver

SINCE = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
FIRING = Notification(
    rule="high_error_rate",
    state="firing",
    severity="critical",
    value=12.5,
    since=SINCE,
    summary="error_rate = 12.5 over 15m (> 5) <script>",
)
RESOLVED = Notification(
    rule="high_error_rate",
    state="resolved",
    severity="critical",
    value=0.4,
    since=SINCE + timedelta(minutes=20),
    summary="error_rate = 0.4 over 15m (> 5)",
)


def _config(kind: str, **options) -> NotifierConfig:
    return NotifierConfig(name=kind, kind=kind, options=options, timeout=5)


def test_webhook_posts_the_spec_document():
    """The generic webhook gets exactly {"rule","state","severity","value","since","summary"}."""
    with http_receiver() as hook:
        notification_send(_config("webhook", url=f"{hook.url}/hook"), FIRING)
        (request,) = hook.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {
        "rule": "high_error_rate",
        "state": "firing",
        "severity": "critical",
        "value": 12.5,
        "since": "2026-11-30T03:00:00+00:00",
        "summary": "error_rate = 12.5 over 15m (> 5) <script>",
    }


def test_slack_posts_an_incoming_webhook_message():
    """Slack gets `text` (its fallback) and header/section blocks, mrkdwn escaped."""
    with http_receiver() as hook:
        notification_send(_config("slack", url=f"{hook.url}/services/T0/B0/secret"), FIRING)
        body = hook.bodies()[0]
    assert body["text"].startswith(":rotating_light: [FIRING] high_error_rate (critical): ")
    assert "&lt;script&gt;" in body["text"] and "<script>" not in body["text"]
    header, summary, fields = body["blocks"]
    assert header == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "text": ":rotating_light: [FIRING] high_error_rate (critical)",
        },
    }
    assert summary["type"] == "section" and summary["text"]["type"] == "mrkdwn"
    assert [f["type"] for f in fields["fields"]] == ["mrkdwn"] * 4
    assert "*Value*\n12.5" in [f["text"] for f in fields["fields"]]


def test_pagerduty_triggers_and_resolves_under_one_dedup_key():
    """Events API v2: trigger with a payload, then resolve with the same dedup_key."""
    with http_receiver() as hook:
        config = _config(
            "pagerduty", url=f"{hook.url}/v2/enqueue", routing_key="R0UT1NG", source="shop-1"
        )
        notification_send(config, FIRING)
        notification_send(config, RESOLVED)
        trigger, resolve = hook.bodies()
    assert trigger["routing_key"] == resolve["routing_key"] == "R0UT1NG"
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == "retail-observability/high_error_rate"
    payload = trigger["payload"]
    assert payload["severity"] in ("critical", "error", "warning", "info")
    assert (payload["source"], payload["timestamp"]) == ("shop-1", "2026-11-30T03:00:00+00:00")
    assert payload["summary"].startswith("high_error_rate: error_rate = 12.5")
    assert payload["custom_details"]["value"] == 12.5
    assert "payload" not in resolve


def test_email_goes_through_a_real_smtp_server(monkeypatch):
    """The message reaches the SMTP server with subject, sender, recipients and details."""
    with smtp_receiver() as smtp:
        monkeypatch.setenv(
            "RETAIL_SMTP_URL",
            f"smtp://{smtp.host}:{smtp.port}?from=alerts@shop.example&to=a@shop.example,b@shop.example",
        )
        notification_send(_config("email"), FIRING)
        notification_send(_config("email", to=["c@shop.example"]), RESOLVED)
    (sender, recipients, message), (_, override, resolved) = smtp.messages
    assert sender == "alerts@shop.example"
    assert recipients == ["a@shop.example", "b@shop.example"]
    assert override == ["c@shop.example"]
    assert message["Subject"] == "[FIRING] high_error_rate (critical)"
    assert resolved["Subject"] == "[RESOLVED] high_error_rate (critical)"
    body = message.get_content()
    assert "error_rate = 12.5 over 15m" in body and "since:    2026-11-30T03:00:00+00:00" in body


def test_email_logs_in_and_never_shows_the_password(monkeypatch):
    """A login the server refuses is a NotifierError naming the server, not the password."""
    with smtp_receiver(credentials=("alerts", "right-pass")) as smtp:
        base = f"{smtp.host}:{smtp.port}?from=alerts@shop.example&to=a@shop.example"
        monkeypatch.setenv("RETAIL_SMTP_URL", f"smtp://alerts:right-pass@{base}")
        notification_send(_config("email"), FIRING)
        monkeypatch.setenv("RETAIL_SMTP_URL", f"smtp://alerts:wr0ng-S3cret@{base}")
        with pytest.raises(NotifierError) as refused:
            notification_send(_config("email"), FIRING)
    assert len(smtp.messages) == 1 and set(smtp.logins) == {"alerts"}
    assert "login refused by 127.0.0.1" in str(refused.value)
    assert "wr0ng-S3cret" not in str(refused.value)


def test_http_errors_name_the_host_only():
    """A refused delivery names the host and status, never the URL's secret path."""
    with http_receiver() as hook:
        hook.statuses = [500]
        with pytest.raises(NotifierError) as failed:
            notification_send(_config("slack", url=f"{hook.url}/services/T0/B0/s3cret"), FIRING)
    assert str(failed.value) == f"HTTP 500 from {hook.url.removeprefix('http://')}"


@pytest.mark.skipif(
    ALERTMANAGER is None,
    reason="Alertmanager is not installed (Debian package prometheus-alertmanager)",
)
def test_alertmanager_takes_the_alert_and_its_resolution():
    """The real Alertmanager lists the firing alert with its labels, then drops it resolved."""
    now = datetime.now(UTC).replace(microsecond=0)
    firing = Notification(**{**FIRING.__dict__, "since": now - timedelta(minutes=1)})
    resolved = Notification(**{**RESOLVED.__dict__, "since": now - timedelta(seconds=1)})
    with alertmanager() as url:
        notification_send(_config("alertmanager", url=url), firing)
        alerts = httpx.get(f"{url}/api/v2/alerts", timeout=5).json()
        assert len(alerts) == 1
        (alert,) = alerts
        assert alert["labels"] == {
            "alertname": "high_error_rate",
            "severity": "critical",
            "service": "retail-observability",
        }
        assert alert["status"]["state"] == "active"
        assert alert["annotations"]["summary"].startswith("error_rate = 12.5")
        notification_send(_config("alertmanager", url=url), resolved)
        active = httpx.get(f"{url}/api/v2/alerts", params={"active": "true"}, timeout=5).json()
        assert [a for a in active if a["endsAt"] > now.isoformat()] == []
