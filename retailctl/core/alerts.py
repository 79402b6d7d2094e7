"""Alert evaluation (SPEC §3.7): each rule's condition from the read model, then its state.

Threshold rules read a KPI of `metrics --json`: windows of whole days off the daily
rollups (`metrics_summary`, calendar days as `--days`), shorter ones off the raw rows
through the (metric_type, recorded_at) index (`metrics_between`), with the same KPI
code. Scenario rules read `scenarios_verify`; anomaly rules the seasonal detector on
the last complete hour. Reads are shared by the rules of one run.
"""

import operator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from retailctl.core.alert_state import (
    AlertState,
    Delivery,
    Step,
    alert_states,
    outbox_deliver,
    state_read,
    state_settle,
    step_next,
)
from retailctl.core.anomalies import Verdict, last_complete_hour, verdicts_for
from retailctl.core.errors import DatabaseUnavailable, UsageError
from retailctl.core.metrics import MetricsReport, metrics_between, metrics_summary
from retailctl.core.notify import FIRING
from retailctl.core.rules import (
    ANOMALY,
    ANOMALY_SERIES,
    SCENARIO,
    Rule,
    RuleSet,
    duration_text,
)
from retailctl.core.scenarios import FAIL, scenarios_verify

_COMPARE = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Condition:
    """Whether a rule's condition holds now, with the value and a sentence for people."""

    active: bool
    value: float | None
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


class _Evaluation:
    """The reads of one run, shared by its rules."""

    def __init__(
        self, conn: Connection, now: datetime, previous: dict[str, AlertState] | None = None
    ):
        self.conn = conn
        self.now = now
        self.previous = previous or {}
        self.hour = last_complete_hour(now)
        self._reports: dict[timedelta, MetricsReport] = {}
        self._scenarios: dict[int, dict] = {}
        self._verdicts: dict[str, Verdict] | None = None

    def report(self, rule: Rule) -> MetricsReport:
        if rule.window not in self._reports:
            if rule.by_days:
                report = metrics_summary(self.conn, days=rule.window.days, now=self.now)
            else:
                report = metrics_between(self.conn, start=self.now - rule.window, end=self.now)
            self._reports[rule.window] = report
        return self._reports[rule.window]

    def scenarios(self, days: int) -> dict:
        if days not in self._scenarios:
            self._scenarios[days] = scenarios_verify(self.conn, days=days, now=self.now)
        return self._scenarios[days]

    def verdict(self, series: str) -> Verdict | None:
        if self._verdicts is None:
            found = verdicts_for(self.conn, [self.hour], ANOMALY_SERIES, now=self.now)
            self._verdicts = {v.series: v for v in found}
        return self._verdicts.get(series)

    def judged(self, rule: Rule) -> Condition | None:
        """Return the condition an earlier run found for this hour, if one did."""
        row = self.previous.get(rule.name)
        detail = row.detail if row else None
        if not detail or detail.get("hour") != self.hour.isoformat():
            return None
        if detail.get("metric") != rule.metric:
            return None
        return Condition(bool(detail.get("anomalous")), row.last_value, row.summary, detail)


def _where(rule: Rule) -> str:
    return f"rule {rule.name!r}" + (f" (line {rule.line})" if rule.line else "")


def _summary(rule: Rule, active: bool, measured: str) -> str:
    """Return the rule's own summary (when it fires) followed by what was measured."""
    return f"{rule.summary} ({measured})" if active and rule.summary else measured


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _threshold(evaluation: _Evaluation, rule: Rule) -> Condition:
    report = evaluation.report(rule)
    kpis = report.kpis
    if rule.metric not in kpis:
        raise UsageError(
            f"{_where(rule)}: unknown KPI {rule.metric!r}; one of {', '.join(sorted(kpis))}"
        )
    value = kpis[rule.metric]
    window = duration_text(rule.window)
    requests = kpis["requests_total"]
    if requests < rule.min_requests:
        return Condition(
            False, None, f"{requests} request(s) in {window}: fewer than {rule.min_requests}"
        )
    if value is None:
        return Condition(False, None, f"{rule.metric}: no data in {window}")
    if isinstance(value, str) != isinstance(rule.value, str):
        raise UsageError(
            f"{_where(rule)}: {rule.metric} is {type(value).__name__}, "
            f"the rule's value {type(rule.value).__name__}"
        )
    if isinstance(value, str):
        active = _COMPARE[rule.op](value.lower(), str(rule.value).lower())
        number = None
    else:
        active = _COMPARE[rule.op](float(value), float(rule.value))
        number = float(value)
    summary = _summary(
        rule,
        active,
        f"{rule.metric} = {_number(value)} over {window} ({rule.op} {_number(rule.value)})",
    )
    return Condition(active, number, summary, {"kpi": rule.metric, "window": window})


def _scenario(evaluation: _Evaluation, rule: Rule) -> Condition:
    result = evaluation.scenarios(rule.window.days)[rule.metric]
    value = (
        result.get("oversold_products")
        if rule.metric == "A1"
        else result.get("payment_success_rate")
    )
    evidence = {k: v for k, v in result.items() if k not in ("status",)}
    active = result["status"] == FAIL
    summary = _summary(rule, active, f"{rule.metric} {result['status']}")
    return Condition(active, None if value is None else float(value), summary, evidence)


def _anomaly(evaluation: _Evaluation, rule: Rule) -> Condition:
    """Judge the last complete hour once: later runs of the hour reuse the stored verdict."""
    judged = evaluation.judged(rule)
    if judged is not None:
        return judged
    verdict = evaluation.verdict(rule.metric)
    if verdict is None:
        return Condition(
            False,
            None,
            f"{rule.metric}: not enough history or traffic to judge",
            {"hour": evaluation.hour.isoformat(), "metric": rule.metric, "anomalous": False},
        )
    detail = {**verdict.to_document(), "metric": rule.metric}
    hour = f"{verdict.hour:%Y-%m-%d %H:00} UTC"
    band = f"{verdict.low:.4g}-{verdict.high:.4g}"
    summary = f"{rule.metric} {verdict.observed:.4g} in the hour from {hour}; expected {band} "
    summary = _summary(rule, verdict.anomalous, summary + f"({verdict.basis} baseline)")
    return Condition(verdict.anomalous, verdict.observed, summary, detail)


def condition_evaluate(evaluation: _Evaluation, rule: Rule) -> Condition:
    """Return whether `rule` holds now."""
    if rule.kind == SCENARIO:
        return _scenario(evaluation, rule)
    if rule.kind == ANOMALY:
        return _anomaly(evaluation, rule)
    return _threshold(evaluation, rule)


@dataclass(frozen=True)
class RuleOutcome:
    """One rule after one run."""

    rule: Rule
    condition: Condition
    state: str
    since: datetime
    pending_since: datetime | None
    transition: str | None  # firing | resolved | repeat
    delivery: Delivery
    owed: list[str]

    def to_document(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "kind": self.rule.kind,
            "metric": self.rule.metric,
            "severity": self.rule.severity,
            "state": self.state,
            "condition": self.condition.active,
            "value": self.condition.value,
            "summary": self.condition.summary,
            "since": self.since.isoformat(),
            "pending_since": None if self.pending_since is None else self.pending_since.isoformat(),
            "transition": self.transition,
            "notified": self.delivery.delivered,
            "notify_failed": self.delivery.failed,
            "notifications_owed": self.owed,
            "detail": self.condition.detail,
        }


@dataclass(frozen=True)
class AlertRun:
    """Everything one `retailctl alert` run did."""

    evaluated_at: datetime
    source: str
    dry_run: bool
    outcomes: list[RuleOutcome]

    @property
    def firing(self) -> list[RuleOutcome]:
        return [o for o in self.outcomes if o.state == FIRING]

    def failures(self) -> list[tuple[str, str, str]]:
        """Return (rule, notifier, error) for every notifier that failed in this run."""
        return [
            (o.rule.name, name, error)
            for o in self.outcomes
            for name, error in o.delivery.failed.items()
        ]

    def to_document(self) -> dict[str, Any]:
        return {
            "evaluated_at": self.evaluated_at.isoformat(),
            "rules_source": self.source,
            "dry_run": self.dry_run,
            "firing": len(self.firing),
            "rules": [o.to_document() for o in self.outcomes],
            "notify_failures": [
                {"rule": rule, "notifier": name, "error": error}
                for rule, name, error in self.failures()
            ],
        }


def _schema_check(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM retail_alert WHERE 1 = 0"))
    except DBAPIError:
        raise DatabaseUnavailable(
            "the schema has no retail_alert table: run `make migrate`"
        ) from None


def alert_run(
    engine: Engine, rule_set: RuleSet, *, now: datetime | None = None, dry_run: bool = False
) -> AlertRun:
    """Evaluate every rule, record each state, notify transitions (unless `dry_run`)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    _schema_check(engine)
    with engine.connect() as conn:
        previous = {state.rule: state for state in alert_states(conn)}
        evaluation = _Evaluation(conn, now, previous)
        conditions = [(rule, condition_evaluate(evaluation, rule)) for rule in rule_set.rules]
    notifiers = {notifier.name: notifier for notifier in rule_set.notifiers}
    outcomes = []
    for rule, condition in conditions:
        if dry_run:
            row = state_read(engine, rule.name)
            outcomes.append(
                _outcome(rule, condition, row, step_next(row, rule, condition.active, now))
            )
            continue
        row, step, claimed = state_settle(
            engine,
            rule,
            active=condition.active,
            value=condition.value,
            summary=condition.summary,
            detail=condition.detail,
            now=now,
            notifiers=notifiers,
        )
        delivery = outbox_deliver(engine, claimed, notifiers) if claimed else Delivery()
        owed = list(delivery.failed) if claimed else row.owed
        outcomes.append(_outcome(rule, condition, row, step, delivery, owed))
    return AlertRun(evaluated_at=now, source=rule_set.source, dry_run=dry_run, outcomes=outcomes)


def _outcome(
    rule: Rule,
    condition: Condition,
    row: AlertState | None,
    step: Step,
    delivery: Delivery | None = None,
    owed: list[str] | None = None,
) -> RuleOutcome:
    return RuleOutcome(
        rule=rule,
        condition=condition,
        state=step.state,
        since=step.since,
        pending_since=step.pending_since,
        transition=step.event,
        delivery=delivery or Delivery(),
        owed=owed if owed is not None else (row.owed if row else []),
    )


def alerts_firing(conn: Connection) -> list[AlertState]:
    """Return the rules firing as the last run left them (dashboard, /metrics/api/)."""
    return alert_states(conn, state=FIRING)
