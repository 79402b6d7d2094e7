"""The alert engine on SQLite and PostgreSQL: transitions, `for:`, repeats, retries, races."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from retailctl.core.alert_state import alert_states
from retailctl.core.alerts import alert_run
from retailctl.core.db import engine_create
from retailctl.core.rules import rules_parse
from tests.support.receivers import http_receiver

T0 = datetime.now(UTC).replace(microsecond=0)


def _rules(url: str, *, for_: str = "0s", repeat: str = "30m", extra: str = ""):
    return rules_parse(
        f"""
[[rule]]
name = "too_many_errors"
kind = "threshold"
metric = "errors_total"
window = "15m"
op = ">"
value = 2
for = "{for_}"
repeat_interval = "{repeat}"
severity = "critical"
{extra}
[[notify]]
kind = "webhook"
url = "{url}/hook"
""",
        source="test rules",
    )


def _errors(rows, at: datetime, count: int = 5) -> None:
    rows.metrics(
        [("error_rate", 1.0, {"path": "/api/x/", "status_code": 500}, at)] * count
        + [("avg_response_time", 5.0, {"path": "/api/x/", "status_code": 500}, at)] * count
    )


def _states(bodies) -> list[str]:
    return [body["state"] for body in bodies]


def test_fires_once_repeats_after_the_interval_and_resolves_once(engine, rows):
    """A rule notifies firing once, again after repeat_interval, and resolved once."""
    with http_receiver() as hook:
        rules = _rules(hook.url)
        _errors(rows, T0 - timedelta(minutes=1))
        first = alert_run(engine, rules, now=T0)
        assert [o.transition for o in first.outcomes] == ["firing"]
        assert first.firing and _states(hook.bodies()) == ["firing"]
        body = hook.bodies()[0]
        assert body == {
            "rule": "too_many_errors",
            "state": "firing",
            "severity": "critical",
            "value": 5.0,
            "since": T0.isoformat(),
            "summary": "errors_total = 5 over 15m (> 2)",
        }
        again = alert_run(engine, rules, now=T0 + timedelta(minutes=1))
        assert again.outcomes[0].transition is None and again.firing
        assert len(hook.bodies()) == 1
        _errors(rows, T0 + timedelta(minutes=29))
        repeated = alert_run(engine, rules, now=T0 + timedelta(minutes=30))
        assert repeated.outcomes[0].transition == "repeat"
        assert _states(hook.bodies()) == ["firing", "firing"]
        assert hook.bodies()[1]["since"] == T0.isoformat()
        resolved = alert_run(engine, rules, now=T0 + timedelta(minutes=50))
        assert resolved.outcomes[0].transition == "resolved" and not resolved.firing
        quiet = alert_run(engine, rules, now=T0 + timedelta(minutes=51))
        assert quiet.outcomes[0].transition is None
        assert _states(hook.bodies()) == ["firing", "firing", "resolved"]
        with engine.connect() as conn:
            (row,) = alert_states(conn)
        assert (row.state, row.since) == ("resolved", T0 + timedelta(minutes=50))
        assert row.last_notified_at == T0 + timedelta(minutes=50)


def test_for_holds_the_rule_back_until_the_condition_has_lasted(engine, rows):
    """With `for = "5m"` the rule is pending, and silent, until five minutes have passed."""
    with http_receiver() as hook:
        rules = _rules(hook.url, for_="5m")
        _errors(rows, T0 - timedelta(minutes=1))
        for minutes in (0, 2, 4):
            run = alert_run(engine, rules, now=T0 + timedelta(minutes=minutes))
            outcome = run.outcomes[0]
            assert (outcome.state, outcome.pending_since) == ("resolved", T0)
            assert not run.firing
        assert hook.bodies() == []
        fired = alert_run(engine, rules, now=T0 + timedelta(minutes=5))
        assert fired.outcomes[0].transition == "firing"
        assert _states(hook.bodies()) == ["firing"]


def test_a_condition_that_stops_before_for_never_fires(engine, rows):
    """A condition that stops while pending resets the `for:` clock."""
    with http_receiver() as hook:
        rules = _rules(hook.url, for_="5m")
        _errors(rows, T0 - timedelta(minutes=14))
        alert_run(engine, rules, now=T0)
        cleared = alert_run(engine, rules, now=T0 + timedelta(minutes=2))
        assert cleared.outcomes[0].pending_since is None
        _errors(rows, T0 + timedelta(minutes=5))
        later = alert_run(engine, rules, now=T0 + timedelta(minutes=6))
        assert later.outcomes[0].pending_since == T0 + timedelta(minutes=6)
        assert not later.firing and hook.bodies() == []


def test_a_receiver_answering_500_gets_the_transition_again_next_run(engine, rows):
    """A failed delivery is reported and retried by the next run, once it succeeds."""
    with http_receiver() as hook:
        hook.statuses = [500]
        rules = _rules(hook.url)
        _errors(rows, T0 - timedelta(minutes=1))
        failed = alert_run(engine, rules, now=T0)
        assert failed.failures() == [
            ("too_many_errors", "webhook", f"HTTP 500 from {hook.url.split('//')[1]}")
        ]
        assert failed.outcomes[0].owed == ["webhook"]
        assert failed.to_document()["notify_failures"][0]["notifier"] == "webhook"
        retried = alert_run(engine, rules, now=T0 + timedelta(minutes=1))
        assert retried.outcomes[0].delivery.delivered == ["webhook"]
        assert retried.failures() == [] and retried.outcomes[0].owed == []
        alert_run(engine, rules, now=T0 + timedelta(minutes=2))
        bodies = hook.bodies()
        assert _states(bodies) == ["firing", "firing"]
        assert bodies[0] == bodies[1]  # the same transition, sent again unchanged


def test_an_unreachable_receiver_is_owed_until_it_answers(engine, rows):
    """Connection refused is a failure too; resolving replaces what is owed."""
    with http_receiver() as hook:
        dead = hook.url
    rules = _rules(dead)
    _errors(rows, T0 - timedelta(minutes=1))
    run = alert_run(engine, rules, now=T0)
    assert "cannot reach 127.0.0.1" in run.failures()[0][2]
    resolved = alert_run(engine, rules, now=T0 + timedelta(minutes=20))
    assert resolved.outcomes[0].transition == "resolved"
    with engine.connect() as conn:
        (row,) = alert_states(conn)
    assert row.outbox["state"] == "resolved" and row.owed == ["webhook"]


def test_dry_run_records_and_sends_nothing(engine, rows):
    """--dry-run shows the transition it would make and leaves no trace."""
    with http_receiver() as hook:
        _errors(rows, T0 - timedelta(minutes=1))
        run = alert_run(engine, _rules(hook.url), now=T0, dry_run=True)
        assert run.outcomes[0].transition == "firing" and run.firing
        assert hook.bodies() == []
        with engine.connect() as conn:
            assert alert_states(conn) == []


def _race(engines, rules, at: datetime) -> None:
    """Start one alert run per engine at the same moment; re-raise the first failure."""
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine):
        try:
            barrier.wait(timeout=10)
            alert_run(engine, rules, now=at)
        except BaseException as exc:  # noqa: BLE001  (re-raised below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]


def test_two_runs_started_at_the_same_moment_notify_each_transition_once(database_url, rows):
    """Overlapping runs (threads with their own engines) send each transition exactly once."""
    engines = [engine_create(database_url) for _ in range(4)]
    try:
        with http_receiver() as hook:
            rules = _rules(hook.url)
            _errors(rows, T0 - timedelta(minutes=1))
            # Firing at 0, nothing new at 1, resolved at 20 (the errors left the window).
            for minutes in (0, 1, 20, 21):
                _race(engines, rules, T0 + timedelta(minutes=minutes))
            assert _states(hook.bodies()) == ["firing", "resolved"]
    finally:
        for engine in engines:
            engine.dispose()


def test_notifiers_below_their_minimum_severity_are_not_told(engine, rows):
    """`min_severity` keeps a notifier out of lesser rules' transitions."""
    with http_receiver() as hook:
        text = _rules(hook.url).rules[0]
        rules = rules_parse(
            f"""
[[rule]]
name = "{text.name}"
kind = "threshold"
metric = "errors_total"
window = "15m"
op = ">"
value = 2
severity = "warning"
[[notify]]
kind = "webhook"
url = "{hook.url}"
min_severity = "critical"
""",
            source="test",
        )
        _errors(rows, T0 - timedelta(minutes=1))
        run = alert_run(engine, rules, now=T0)
        assert run.firing and hook.bodies() == []
        assert run.outcomes[0].owed == []


@pytest.mark.parametrize(
    ("extra_rule", "state"),
    [
        ('metric = "circuit_breaker_state"\nop = "!="\nvalue = "closed"', "firing"),
        ('metric = "circuit_breaker_state"\nop = "=="\nvalue = "closed"', "resolved"),
    ],
)
def test_string_kpis_compare_as_text(engine, rows, extra_rule, state):
    """The breaker rule compares the state name, case-insensitively."""
    rows.metric(
        "circuit_breaker_state", 2, {"from": "closed", "to": "OPEN"}, T0 - timedelta(minutes=3)
    )
    rules = rules_parse(
        f'[[rule]]\nname = "breaker"\nkind = "threshold"\nwindow = "15m"\n{extra_rule}\n',
        source="test",
    )
    assert alert_run(engine, rules, now=T0).outcomes[0].state == state


def test_built_in_scenario_rule_fires_on_an_a1_failure_with_its_summary(engine, rows):
    """A stock ledger that does not balance makes the built-in A1 rule fire, saying what A1 is."""
    from retailctl.core.rules import default_rules

    rows.product(stock=10)  # ten in stock, no ledger movement: the ledger does not balance
    run = alert_run(engine, default_rules(), now=T0)
    (a1,) = [o for o in run.firing]
    assert a1.rule.name == "a1_oversell" and a1.transition == "firing"
    assert a1.condition.summary.startswith("Scenario A1 FAILs: stock went negative or the stock")
    assert a1.condition.summary.endswith("(A1 FAIL)")
    assert a1.condition.detail["ledger_mismatched_products"] == 1
