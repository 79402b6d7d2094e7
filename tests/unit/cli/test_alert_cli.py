"""`retailctl alert` and `retailctl anomalies` through Typer's CliRunner: output and exit codes."""

import json
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from retailctl.cli import app
from tests.support.receivers import http_receiver

runner = CliRunner()


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env={"RETAIL_ALERT_RULES": "", **(env or {})})


def _rules(tmp_path, url: str = "http://127.0.0.1:9/") -> str:
    path = tmp_path / "rules.toml"
    path.write_text(
        f"""
[[rule]]
name = "errors_seen"
kind = "threshold"
metric = "errors_total"
window = "5m"
op = ">="
value = 1

[[notify]]
kind = "webhook"
url = "{url}"
"""
    )
    return str(path)


def test_alert_exits_0_when_nothing_fires_and_1_when_something_does(database_url, rows, tmp_path):
    """Built-in rules on a quiet shop exit 0; a firing rule exits 1 and says so."""
    quiet = invoke("alert", "--database-url", database_url)
    assert quiet.exit_code == 0, quiet.output
    assert "10 rule(s) from built-in rules: 0 firing" in quiet.stdout
    rows.metric("error_rate", 1.0, {"path": "/x/", "status_code": 500})
    with http_receiver() as hook:
        fired = invoke(
            "alert", "--rules", _rules(tmp_path, hook.url), "--database-url", database_url
        )
        assert fired.exit_code == 1, fired.output
        assert "errors_seen" in fired.stdout and "firing (FIRED)" in fired.stdout
        assert [body["state"] for body in hook.bodies()] == ["firing"]


def test_alert_json_is_one_document(database_url, rows, tmp_path):
    """--json prints the run's document only."""
    rows.metric("error_rate", 1.0, {"path": "/x/", "status_code": 500})
    with http_receiver() as hook:
        result = invoke(
            "alert", "--json", "--rules", _rules(tmp_path, hook.url), "--database-url", database_url
        )
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["firing"] == 1
    (rule,) = document["rules"]
    assert (rule["rule"], rule["state"], rule["transition"], rule["notified"]) == (
        "errors_seen",
        "firing",
        "firing",
        ["webhook"],
    )


def test_a_failing_notifier_is_reported_on_stderr_and_in_json(database_url, rows, tmp_path):
    """A receiver that fails is named on stderr and in --json; the exit code is the rules'."""
    rows.metric("error_rate", 1.0, {"path": "/x/", "status_code": 500})
    with http_receiver() as hook:
        hook.statuses = [500]
        result = invoke(
            "alert", "--json", "--rules", _rules(tmp_path, hook.url), "--database-url", database_url
        )
    assert result.exit_code == 1
    assert (
        "notifier 'webhook' failed for rule 'errors_seen': HTTP 500 from 127.0.0.1" in result.stderr
    )
    assert "(retried next run)" in result.stderr
    document = json.loads(result.stdout)
    assert document["notify_failures"][0]["error"].startswith("HTTP 500")
    assert document["rules"][0]["notifications_owed"] == ["webhook"]


def test_dry_run_changes_nothing(database_url, rows, tmp_path):
    """--dry-run shows what would fire; the next real run still makes the transition."""
    rows.metric("error_rate", 1.0, {"path": "/x/", "status_code": 500})
    rules = _rules(tmp_path)
    dry = invoke("alert", "--dry-run", "--rules", rules, "--database-url", database_url)
    assert dry.exit_code == 1 and "dry run: nothing recorded or sent" in dry.stdout
    real = invoke("alert", "--json", "--rules", rules, "--database-url", database_url)
    assert json.loads(real.stdout)["rules"][0]["transition"] == "firing"


def test_a_bad_rules_file_exits_2_naming_the_line(database_url, tmp_path):
    """A rules file with a mistake exits 2 with its line, before touching the database."""
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nname = "x"\nkind = "threshold"\nmetric = "error_rate"\nwindow = "2w"\n'
    )
    result = invoke("alert", "--rules", str(path), "--database-url", "sqlite:////nonexistent/db")
    assert result.exit_code == 2
    assert (
        result.stderr
        == f"retailctl: error: {path}, line 5: not a duration: '2w' (use e.g. 30s, 15m, 1h, 7d)\n"
    )
    env = invoke("alert", "--database-url", database_url, env={"RETAIL_ALERT_RULES": str(path)})
    assert env.exit_code == 2 and "line 5" in env.stderr


def test_an_unknown_kpi_exits_2_naming_the_rule_line(database_url, tmp_path):
    """A threshold on a KPI that metrics --json does not have is a usage error."""
    path = tmp_path / "rules.toml"
    path.write_text(
        '\n[[rule]]\nname = "x"\nkind = "threshold"\nmetric = "error_ratio"\n'
        'window = "1d"\nop = ">"\nvalue = 1\n'
    )
    result = invoke("alert", "--rules", str(path), "--database-url", database_url)
    assert result.exit_code == 2
    assert "rule 'x' (line 2): unknown KPI 'error_ratio'; one of " in result.stderr


def test_an_unreachable_database_exits_3():
    """No database: one line on stderr, exit 3, no traceback."""
    result = invoke("alert", "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert result.exit_code == 3
    assert result.stderr.startswith("retailctl: error: database unreachable")
    assert "Traceback" not in result.output
    missing = invoke("anomalies", "--database-url", "sqlite:////nonexistent/retail.sqlite3")
    assert missing.exit_code == 3


def test_anomalies_lists_nothing_on_a_quiet_shop_and_json_is_a_document(database_url, rows):
    """anomalies exits 0; --json carries the days, the time and the list."""
    rows.metric("avg_response_time", 5.0, {"path": "/x/", "status_code": 200})
    shown = invoke("anomalies", "--database-url", database_url)
    assert shown.exit_code == 0
    assert "No hour stood out from its seasonal band." in shown.stdout
    result = invoke("anomalies", "--days", "2", "--json", "--database-url", database_url)
    document = json.loads(result.stdout)
    assert (document["days"], document["anomalies"]) == (2, [])
    assert datetime.fromisoformat(document["evaluated_at"]) > datetime.now(UTC) - timedelta(
        minutes=5
    )
