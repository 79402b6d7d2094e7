"""deploy/prometheus/alerts.yml: valid for promtool, and its unit tests pass.

The rules are written against the names /metrics/prometheus exposes (SPEC §3.3); promtool
comes with Debian's `prometheus` package, which `.ci/run` installs.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package `prometheus`)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=300
    )


@needs_promtool
def test_alert_rules_pass_promtool_check():
    """`promtool check rules` accepts every rule."""
    done = _promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 20 rules found" in done.stdout


@needs_promtool
def test_alert_rules_unit_tests_pass():
    """`promtool test rules`: each built-in rule fires when it should and only then."""
    done = _promtool("test", "rules", "alerts.test.yml", "anomalies.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_prometheus_rules_mirror_the_built_in_rules():
    """Every built-in retailctl rule has a Prometheus alert of the same name, and no more."""
    import yaml

    from retailctl.core.rules import default_rules, duration_text

    groups = yaml.safe_load((RULES_DIR / "alerts.yml").read_text())["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}
    built_in = {rule.name: rule for rule in default_rules().rules}
    assert set(alerts) == set(built_in)
    for name, rule in built_in.items():
        assert alerts[name]["labels"]["severity"] == rule.severity, name
        assert alerts[name].get("for") == (duration_text(rule.for_) if rule.for_ else None), name
