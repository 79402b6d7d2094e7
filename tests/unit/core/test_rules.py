"""Rules files: the built-in rules, the shipped example, and bad files named by their line."""

from datetime import timedelta
from pathlib import Path

import pytest

from retailctl.core.errors import UsageError
from retailctl.core.rules import (
    RULES_ENV,
    default_rules,
    duration_parse,
    rules_load,
    rules_parse,
)

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "alert-rules.example.toml"
GOOD_RULE = '[[rule]]\nname = "r"\nkind = "threshold"\nmetric = "error_rate"\nwindow = "15m"\n'


def test_built_in_rules_cover_the_spec_list():
    """Without a file: A1, A2, breaker, error rate and p99 over 15m, and anomalies."""
    rules = {rule.name: rule for rule in default_rules().rules}
    assert {rules["a1_oversell"].metric, rules["a2_payment_resilience"].metric} == {"A1", "A2"}
    assert rules["payment_breaker_open"].metric == "circuit_breaker_state"
    for name, metric in (
        ("high_error_rate", "error_rate"),
        ("high_p99_latency", "p99_response_time_ms"),
    ):
        assert (rules[name].metric, rules[name].window) == (metric, timedelta(minutes=15))
    assert {r.metric for r in rules.values() if r.kind == "anomaly"} == {
        "requests",
        "errors",
        "error_rate",
        "p95",
        "orders",
    }
    assert default_rules().notifiers == ()


def test_the_example_file_loads(monkeypatch):
    """deploy/alert-rules.example.toml is valid: the built-ins plus its own rules and notifiers."""
    monkeypatch.setenv("RETAIL_SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T/B/x")
    monkeypatch.setenv("RETAIL_PAGERDUTY_ROUTING_KEY", "R0UT1NG")
    monkeypatch.setenv("RETAIL_SMTP_URL", "smtp://relay.example:25?from=alerts@shop.example")
    rule_set = rules_load(EXAMPLE)
    names = [rule.name for rule in rule_set.rules]
    assert names[: len(default_rules().rules)] == [r.name for r in default_rules().rules]
    assert "checkout_errors_burst" in names
    assert [n.kind for n in rule_set.notifiers] == [
        "slack",
        "pagerduty",
        "email",
        "webhook",
        "alertmanager",
    ]
    slack = rule_set.notifiers[0]
    assert slack.options["url"].startswith("https://hooks.slack.example/")
    assert rule_set.notifiers[1].options["routing_key"] == "R0UT1NG"


def test_rules_env_variable_is_read_when_no_path_is_given(tmp_path, monkeypatch):
    """RETAIL_ALERT_RULES names the file when --rules is not given."""
    path = tmp_path / "rules.toml"
    path.write_text(GOOD_RULE + 'op = ">"\nvalue = 1\n')
    monkeypatch.setenv(RULES_ENV, str(path))
    assert [rule.name for rule in rules_load().rules] == ["r"]
    monkeypatch.delenv(RULES_ENV)
    assert rules_load().source == "built-in rules"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[[rule]]\nname = "r"\nkind = "threshold"\nwindow = 15m\n', 4, "invalid TOML"),
        (GOOD_RULE + 'op = "=>"\nvalue = 1\n', 6, "`op` must be one of"),
        (GOOD_RULE + 'op = ">"\nvalue = "high"\n', 7, "a string `value` only goes with"),
        (GOOD_RULE + 'op = ">"\nvalue = 1\nwindw = "5m"\n', 8, "unknown key 'windw'"),
        (GOOD_RULE.replace('"15m"', '"45d"') + 'op = ">"\nvalue = 1\n', 5, "from 1m to 30d"),
        (GOOD_RULE.replace('"15m"', '"36h"') + 'op = ">"\nvalue = 1\n', 5, "whole days"),
        (GOOD_RULE.replace('"15m"', '"fast"') + 'op = ">"\nvalue = 1\n', 5, "not a duration"),
        (GOOD_RULE + 'op = ">"\nvalue = 1\nfor = 5\n', 8, "not a duration"),
        (GOOD_RULE + 'op = ">"\n', 1, "needs `value`"),
        (
            GOOD_RULE + 'op = ">"\nvalue = 1\n\n' + GOOD_RULE + 'op = ">"\nvalue = 2\n',
            9,
            "used twice",
        ),
        ('[[rule]]\nname = "a"\nkind = "anomaly"\nmetric = "latency"\n', 4, "anomaly rule's"),
        ('[[rule]]\nname = "a"\nkind = "scenario"\nmetric = "A3"\n', 4, "scenario rule's"),
        ('[[rule]]\nname = "a b"\nkind = "scenario"\nmetric = "A1"\n', 2, "`name` must be"),
        (
            GOOD_RULE + 'op = ">"\nvalue = 1\n[[notify]]\nkind = "slack"\n',
            8,
            "needs `url`",
        ),
        (
            GOOD_RULE + 'op = ">"\nvalue = 1\n[[notify]]\nkind = "webhook"\nurl = "ftp://x"\n',
            10,
            "http(s)",
        ),
        (
            GOOD_RULE + 'op = ">"\nvalue = 1\n[[notify]]\nkind = "pager"\n',
            9,
            "`kind` must be one of",
        ),
        (
            GOOD_RULE + 'op = ">"\nvalue = 1\n[[notify]]\nkind = "webhook"\nurl = "${NOPE_X}"\n',
            10,
            "${NOPE_X} is not set",
        ),
        ("defaults = false\n", 0, "no [[rule]] table"),
    ],
)
def test_a_bad_rules_file_names_its_line(text, line, message):
    """Every mistake raises UsageError (exit 2) that names the line it is on."""
    with pytest.raises(UsageError) as caught:
        rules_parse(text, source="rules.toml")
    error = str(caught.value)
    assert message in error
    assert error.startswith(f"rules.toml, line {line}:" if line else "rules.toml:")
    assert caught.value.exit_code == 2


def test_email_notifier_needs_an_smtp_url(monkeypatch):
    """An email notifier without RETAIL_SMTP_URL is a usage error naming its table's line."""
    monkeypatch.delenv("RETAIL_SMTP_URL", raising=False)
    with pytest.raises(UsageError, match=r"line 8: email notifier: RETAIL_SMTP_URL is not set"):
        rules_parse(GOOD_RULE + 'op = ">"\nvalue = 1\n[[notify]]\nkind = "email"\n', source="r")


def test_an_unreadable_rules_file_is_a_usage_error(tmp_path):
    """A missing file is exit 2, naming the file."""
    with pytest.raises(UsageError, match="cannot read rules file"):
        rules_load(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", timedelta(seconds=30)), ("15m", timedelta(minutes=15)), ("7d", timedelta(days=7))],
)
def test_durations(text, expected):
    assert duration_parse(text) == expected
