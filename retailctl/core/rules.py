"""Alert rules: the built-in defaults and TOML rules files, checked with their line numbers.

A rules file holds `[[rule]]` tables, `[[notify]]` tables and optionally `defaults = true`
(the built-in rules as well as the file's). Anything wrong names its line (exit 2): a
cron job with a typo must fail loudly, not watch nothing. One module past 400 lines on
purpose: reading a rules file is one job, and a hundred of its lines are the built-in
rules, kept as TOML text so they go through the very checks a file does.
"""

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from retailctl.core.errors import UsageError

RULES_ENV = "RETAIL_ALERT_RULES"
SMTP_URL_ENV = "RETAIL_SMTP_URL"

THRESHOLD, SCENARIO, ANOMALY = "threshold", "scenario", "anomaly"
KINDS = (THRESHOLD, SCENARIO, ANOMALY)
SEVERITIES = ("info", "warning", "critical")
OPERATORS = (">", ">=", "<", "<=", "==", "!=")
SCENARIOS = ("A1", "A2")
# The hourly series of retailctl.core.series that anomaly rules watch.
ANOMALY_SERIES = ("requests", "errors", "error_rate", "p95", "p99", "orders")
NOTIFIER_KINDS = ("webhook", "slack", "pagerduty", "email", "alertmanager")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

MIN_WINDOW = timedelta(minutes=1)
MAX_RAW_WINDOW = timedelta(days=1)
MAX_WINDOW = timedelta(days=30)
DEFAULT_REPEAT = timedelta(hours=4)  # Alertmanager's default repeat_interval
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RULE_KEYS = {
    "name",
    "kind",
    "metric",
    "window",
    "op",
    "value",
    "for",
    "severity",
    "repeat_interval",
    "min_requests",
    "summary",
}
_NOTIFY_KEYS = {
    "name",
    "kind",
    "url",
    "routing_key",
    "to",
    "min_severity",
    "timeout",
    "source",
}

# The built-in rules (no --rules, no RETAIL_ALERT_RULES), parsed like any rules file.
DEFAULT_RULES_TOML = """
[[rule]]
name = "a1_oversell"
kind = "scenario"
metric = "A1"
window = "1d"
severity = "critical"
summary = "Scenario A1 FAILs: stock went negative or the stock ledger does not balance"

[[rule]]
name = "a2_payment_resilience"
kind = "scenario"
metric = "A2"
window = "1d"
severity = "critical"
summary = "Scenario A2 FAILs: payment success below 95 % or fast-fail p99 over 100 ms today"

[[rule]]
name = "payment_breaker_open"
kind = "threshold"
metric = "circuit_breaker_state"
window = "15m"
op = "!="
value = "closed"
for = "1m"
severity = "critical"
summary = "The payment circuit breaker is not closed: checkouts are turned away"

[[rule]]
name = "high_error_rate"
kind = "threshold"
metric = "error_rate"
window = "15m"
op = ">"
value = 5.0
for = "5m"
min_requests = 20
severity = "warning"

[[rule]]
name = "high_p99_latency"
kind = "threshold"
metric = "p99_response_time_ms"
window = "15m"
op = ">"
value = 1000.0
for = "5m"
min_requests = 20
severity = "warning"

[[rule]]
name = "anomaly_requests"
kind = "anomaly"
metric = "requests"
severity = "warning"

[[rule]]
name = "anomaly_errors"
kind = "anomaly"
metric = "errors"
severity = "warning"

[[rule]]
name = "anomaly_error_rate"
kind = "anomaly"
metric = "error_rate"
severity = "warning"

[[rule]]
name = "anomaly_p95_latency"
kind = "anomaly"
metric = "p95"
severity = "warning"

[[rule]]
name = "anomaly_orders"
kind = "anomaly"
metric = "orders"
severity = "warning"
"""


@dataclass(frozen=True)
class Rule:
    """One alert rule; `line` is where it starts in its file (0 for the built-ins)."""

    name: str
    kind: str
    metric: str
    window: timedelta
    severity: str = "warning"
    op: str = ">"
    value: float | str | None = None
    for_: timedelta = timedelta(0)
    repeat_interval: timedelta = DEFAULT_REPEAT
    min_requests: int = 0
    summary: str = ""
    line: int = 0

    @property
    def by_days(self) -> bool:
        """True when the window is whole calendar days (read off the daily rollups)."""
        return self.window % timedelta(days=1) == timedelta(0)


@dataclass(frozen=True)
class NotifierConfig:
    """One `[[notify]]` table: where transitions go."""

    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    min_severity: str = "info"
    timeout: float = 5.0
    line: int = 0

    def wants(self, severity: str) -> bool:
        """Return True when a rule of `severity` is at or above this notifier's minimum."""
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.min_severity)


@dataclass(frozen=True)
class RuleSet:
    """The rules and notifiers one run evaluates, and where they came from."""

    rules: tuple[Rule, ...]
    notifiers: tuple[NotifierConfig, ...]
    source: str


def duration_parse(text: Any) -> timedelta:
    """Return the timedelta of '90s', '15m', '1h' or '7d'; raise ValueError otherwise."""
    match = _DURATION.match(str(text).strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 1h, 7d)")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def duration_text(value: timedelta) -> str:
    """Return the shortest duration text of `value` ('15m', '1d')."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class _Locator:
    """Find the line of the n-th `[[table]]` of a kind, and of a key inside it."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str]] = []
        for number, line in enumerate(self.lines, start=1):
            header = re.match(r"^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]", line)
            single = re.match(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]", line)
            if header:
                self.headers.append((number, header[1]))
            elif single:
                self.headers.append((number, single[1]))

    def table(self, kind: str, index: int) -> int:
        found = [number for number, name in self.headers if name == kind]
        return found[index] if index < len(found) else 0

    def key(self, kind: str, index: int, key: str) -> int:
        start = self.table(kind, index)
        if not start:
            return 0
        ends = [number for number, _ in self.headers if number > start]
        end = ends[0] if ends else len(self.lines) + 1
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(start + 1, end):
            if pattern.match(self.lines[number - 1]):
                return number
        return start

    def top_key(self, key: str) -> int:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number, line in enumerate(self.lines, start=1):
            if self.headers and number >= self.headers[0][0]:
                break
            if pattern.match(line):
                return number
        return 0


class _Reader:
    """Validate one parsed rules document, raising UsageError at the offending line."""

    def __init__(self, text: str, source: str):
        self.source = source
        self.locate = _Locator(text)
        try:
            self.document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            where = re.search(r" \(at line (\d+), column (\d+)\)$", str(exc))
            if where is None:
                raise UsageError(f"{source}: invalid TOML: {exc}") from None
            reason = str(exc)[: where.start()]
            raise UsageError(
                f"{source}, line {where[1]}: invalid TOML: {reason} (column {where[2]})"
            ) from None

    def fail(self, line: int, message: str):
        where = f"{self.source}, line {line}" if line else self.source
        raise UsageError(f"{where}: {message}")

    def rule_set(self) -> RuleSet:
        document = self.document
        unknown = set(document) - {"rule", "notify", "defaults"}
        if unknown:
            key = sorted(unknown)[0]
            self.fail(self.locate.top_key(key) or self.locate.table(key, 0), f"unknown key {key!r}")
        include_defaults = document.get("defaults", False)
        if not isinstance(include_defaults, bool):
            self.fail(self.locate.top_key("defaults"), "`defaults` must be true or false")
        tables = self._tables("rule")
        rules = [self._rule(index, table) for index, table in enumerate(tables)]
        if include_defaults:
            rules = list(default_rules().rules) + rules
        seen: dict[str, Rule] = {}
        for rule in rules:
            if rule.name in seen:
                self.fail(rule.line, f"rule name {rule.name!r} is used twice")
            seen[rule.name] = rule
        notifiers = [self._notifier(i, tbl) for i, tbl in enumerate(self._tables("notify"))]
        names: set[str] = set()
        for notifier in notifiers:
            if notifier.name in names:
                self.fail(
                    notifier.line, f"notifier name {notifier.name!r} is used twice: add `name`"
                )
            names.add(notifier.name)
        if not rules:
            self.fail(0, "no [[rule]] table (add rules, or `defaults = true`)")
        return RuleSet(rules=tuple(rules), notifiers=tuple(notifiers), source=self.source)

    def _tables(self, kind: str) -> list[dict[str, Any]]:
        tables = self.document.get(kind, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            self.fail(self.locate.table(kind, 0), f"`{kind}` must be [[{kind}]] tables")
        return tables

    def _string(self, kind, index, table, key, *, required=True, choices=None) -> str | None:
        value = table.get(key)
        line = self.locate.key(kind, index, key)
        if value is None:
            if required:
                self.fail(self.locate.table(kind, index), f"[[{kind}]] needs `{key}`")
            return None
        if not isinstance(value, str):
            self.fail(line, f"`{key}` must be a string")
        if choices and value not in choices:
            self.fail(line, f"`{key}` must be one of {', '.join(choices)}; got {value!r}")
        return value

    def _duration(self, index, table, key, default: timedelta) -> timedelta:
        if key not in table:
            return default
        try:
            return duration_parse(table[key])
        except ValueError as exc:
            self.fail(self.locate.key("rule", index, key), str(exc))

    def _rule(self, index: int, table: dict[str, Any]) -> Rule:
        start = self.locate.table("rule", index)
        unknown = set(table) - _RULE_KEYS
        if unknown:
            key = sorted(unknown)[0]
            self.fail(self.locate.key("rule", index, key), f"unknown key {key!r} in [[rule]]")
        name = self._string("rule", index, table, "name")
        if not _NAME.match(name):
            self.fail(
                self.locate.key("rule", index, "name"),
                "`name` must be 1-100 letters, digits or _ . : -",
            )
        kind = self._string("rule", index, table, "kind", choices=KINDS)
        severity = self._string(
            "rule", index, table, "severity", required=False, choices=SEVERITIES
        )
        metric = self._string("rule", index, table, "metric")
        window = self._window(index, table, kind)
        summary = self._string("rule", index, table, "summary", required=False) or ""
        rule = Rule(
            name=name,
            kind=kind,
            metric=metric,
            window=window,
            severity=severity or "warning",
            for_=self._duration(index, table, "for", timedelta(0)),
            repeat_interval=self._duration(index, table, "repeat_interval", DEFAULT_REPEAT),
            summary=summary[:500],
            line=start,
        )
        if rule.repeat_interval < MIN_WINDOW:
            self.fail(self.locate.key("rule", index, "repeat_interval"), "at least 1m")
        if kind == THRESHOLD:
            return self._threshold(index, table, rule)
        for key in ("op", "value", "min_requests"):
            if key in table:
                self.fail(self.locate.key("rule", index, key), f"`{key}` is for threshold rules")
        if kind == SCENARIO and metric not in SCENARIOS:
            self.fail(
                self.locate.key("rule", index, "metric"),
                f"a scenario rule's metric is one of {', '.join(SCENARIOS)}; got {metric!r}",
            )
        if kind == ANOMALY and metric not in ANOMALY_SERIES:
            self.fail(
                self.locate.key("rule", index, "metric"),
                f"an anomaly rule's metric is one of {', '.join(ANOMALY_SERIES)}; got {metric!r}",
            )
        return rule

    def _window(self, index: int, table: dict[str, Any], kind: str) -> timedelta:
        default = {THRESHOLD: None, SCENARIO: timedelta(days=1), ANOMALY: timedelta(hours=1)}
        line = self.locate.key("rule", index, "window")
        if "window" not in table:
            if default[kind] is None:
                self.fail(self.locate.table("rule", index), "[[rule]] needs `window`")
            return default[kind]
        window = self._duration(index, table, "window", timedelta(0))
        if not MIN_WINDOW <= window <= MAX_WINDOW:
            self.fail(line, "`window` must be from 1m to 30d")
        by_days = window % timedelta(days=1) == timedelta(0)
        if kind == THRESHOLD and not by_days and window > MAX_RAW_WINDOW:
            self.fail(line, "a window over 1 day is given in whole days (e.g. 2d, not 36h)")
        if kind == SCENARIO and not by_days:
            self.fail(line, "a scenario rule's window is whole days (1d..30d)")
        if kind == ANOMALY and window != timedelta(hours=1):
            self.fail(line, "an anomaly rule looks at the last complete hour: window = 1h")
        return window

    def _threshold(self, index: int, table: dict[str, Any], rule: Rule) -> Rule:
        if not re.match(r"^[a-z0-9_]{1,64}$", rule.metric):
            self.fail(self.locate.key("rule", index, "metric"), "`metric` is a KPI name")
        op = self._string("rule", index, table, "op", choices=OPERATORS)
        if "value" not in table:
            self.fail(self.locate.table("rule", index), "[[rule]] needs `value`")
        value = table["value"]
        line = self.locate.key("rule", index, "value")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.fail(line, "`value` must be a number (or a string with == / !=)")
        if isinstance(value, str) and op not in ("==", "!="):
            self.fail(line, "a string `value` only goes with == or !=")
        min_requests = table.get("min_requests", 0)
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 0:
            self.fail(self.locate.key("rule", index, "min_requests"), "a whole number >= 0")
        return replace(
            rule,
            op=op,
            value=value if isinstance(value, str) else float(value),
            min_requests=min_requests,
        )

    def _notifier(self, index: int, table: dict[str, Any]) -> NotifierConfig:
        start = self.locate.table("notify", index)
        unknown = set(table) - _NOTIFY_KEYS
        if unknown:
            key = sorted(unknown)[0]
            self.fail(self.locate.key("notify", index, key), f"unknown key {key!r} in [[notify]]")
        kind = self._string("notify", index, table, "kind", choices=NOTIFIER_KINDS)
        name = self._string("notify", index, table, "name", required=False) or kind
        min_severity = self._string(
            "notify", index, table, "min_severity", required=False, choices=SEVERITIES
        )
        timeout = table.get("timeout", 5)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= 60
        ):
            self.fail(self.locate.key("notify", index, "timeout"), "`timeout`: 0 < seconds <= 60")
        options: dict[str, Any] = {}
        for key in ("url", "routing_key", "source"):
            value = self._string("notify", index, table, key, required=False)
            if value is not None:
                options[key] = self._expand(value, self.locate.key("notify", index, key))
        if "to" in table:
            to = table["to"]
            to = [to] if isinstance(to, str) else to
            if not isinstance(to, list) or not to or not all(isinstance(a, str) for a in to):
                self.fail(self.locate.key("notify", index, "to"), "`to`: an address or a list")
            options["to"] = [self._expand(a, self.locate.key("notify", index, "to")) for a in to]
        if kind in ("webhook", "slack", "alertmanager"):
            url = options.get("url")
            if not url:
                self.fail(start, f"a {kind} notifier needs `url`")
            if not re.match(r"^https?://[^/\s]+", url):
                self.fail(self.locate.key("notify", index, "url"), "`url` must be http(s)://…")
        if kind == "pagerduty":
            if not options.get("routing_key"):
                self.fail(start, "a pagerduty notifier needs `routing_key` (the integration key)")
            options.setdefault("url", PAGERDUTY_EVENTS_URL)
        if kind == "email":
            from retailctl.core.notify.email import smtp_settings

            try:
                smtp_settings(os.environ.get(SMTP_URL_ENV, ""), options.get("to"))
            except ValueError as exc:
                self.fail(start, f"email notifier: {exc}")
        return NotifierConfig(
            name=name,
            kind=kind,
            options=options,
            min_severity=min_severity or "info",
            timeout=float(timeout),
            line=start,
        )

    def _expand(self, value: str, line: int) -> str:
        """Replace ${VAR} by the environment's value: secrets stay out of the rules file."""

        def substitute(match: re.Match) -> str:
            name = match[1]
            if name not in os.environ:
                self.fail(line, f"${{{name}}} is not set in the environment")
            return os.environ[name]

        return _ENV_REFERENCE.sub(substitute, value)


def default_rules() -> RuleSet:
    """Return the built-in rules: A1, A2, breaker, error rate, p99 and anomalies."""
    rules = _Reader(DEFAULT_RULES_TOML, "built-in rules").rule_set().rules
    return RuleSet(
        rules=tuple(replace(rule, line=0) for rule in rules), notifiers=(), source="built-in rules"
    )


def rules_parse(text: str, *, source: str) -> RuleSet:
    """Return the rule set of a rules file's text; raise UsageError naming the bad line."""
    return _Reader(text, source).rule_set()


def rules_load(path: Path | str | None = None) -> RuleSet:
    """Return the rules of `path`, else of $RETAIL_ALERT_RULES, else the built-in rules."""
    chosen = path or os.environ.get(RULES_ENV) or None
    if chosen is None:
        return default_rules()
    path = Path(chosen)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read rules file {path}: {exc.__class__.__name__}") from None
    return rules_parse(text, source=str(path))
