"""The rows of `retail_alert`: transitions by compare-and-set, notifications owed until sent.

Every write is `UPDATE … WHERE rule = ? AND version = ?`: of two runs that read the same
row, one writes and the other reads again and finds the transition done, so it is
notified once (PostgreSQL re-checks the WHERE after the row lock, SQLite serialises
writers). The notification a transition owes is kept in the row (`outbox`) with the
notifiers still owed it; a run delivers it only after claiming it (`claimed_until`, a
lease that runs out if that run dies), and a notifier that fails stays owed for the next.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from retailctl.core import tables as t
from retailctl.core.db import insert_ignoring_conflicts
from retailctl.core.notify import (
    FIRING,
    RESOLVED,
    Notification,
    NotifierError,
    notification_send,
)
from retailctl.core.rules import NotifierConfig, Rule

REPEAT = "repeat"
_CAS_ATTEMPTS = 20
_LEASE_MARGIN = timedelta(seconds=30)


@dataclass(frozen=True)
class AlertState:
    """One row of retail_alert."""

    rule: str
    state: str
    severity: str
    since: datetime
    pending_since: datetime | None
    last_value: float | None
    summary: str
    detail: dict[str, Any] | None
    last_evaluated_at: datetime
    last_notified_at: datetime | None
    outbox: dict[str, Any] | None
    claimed_until: datetime | None
    version: int

    @property
    def owed(self) -> list[str]:
        """Notifiers still owed this rule's last transition."""
        return list(self.outbox["pending"]) if self.outbox else []

    def to_document(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "state": self.state,
            "severity": self.severity,
            "since": self.since.isoformat(),
            "value": self.last_value,
            "summary": self.summary,
            "last_evaluated_at": self.last_evaluated_at.isoformat(),
            "last_notified_at": _iso(self.last_notified_at),
            "notifications_owed": self.owed,
            "notification_errors": dict(self.outbox.get("errors", {})) if self.outbox else {},
        }


@dataclass(frozen=True)
class Step:
    """What one evaluation changes in a row, and the transition it makes (if any)."""

    state: str
    since: datetime
    pending_since: datetime | None
    event: str | None  # firing | resolved | repeat


@dataclass
class Delivery:
    """What one run sent for one rule."""

    delivered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def alert_states(conn, *, state: str | None = None) -> list[AlertState]:
    """Return the rows of retail_alert (only those in `state` when given), by rule."""
    a = t.alert
    query = select(a).order_by(a.c.rule)
    if state is not None:
        query = query.where(a.c.state == state)
    return [_state_of(row) for row in conn.execute(query)]


def _state_of(row) -> AlertState:
    data = dict(row._mapping)
    data.pop("id", None)
    return AlertState(**data)


def state_read(engine: Engine, rule: str) -> AlertState | None:
    """Return one rule's row, or None before its first run."""
    with engine.connect() as conn:
        row = conn.execute(select(t.alert).where(t.alert.c.rule == rule)).first()
    return None if row is None else _state_of(row)


def state_create(engine: Engine, rule: Rule, now: datetime) -> None:
    """Insert a rule's first row (resolved), unless another run just did."""
    statement = insert_ignoring_conflicts(engine.dialect.name, t.alert, key=["rule"]).values(
        rule=rule.name,
        state=RESOLVED,
        severity=rule.severity,
        since=now,
        summary="",
        last_evaluated_at=now,
        version=0,
    )
    with engine.begin() as conn:
        conn.execute(statement)


def step_next(row: AlertState | None, rule: Rule, active: bool, now: datetime) -> Step:
    """Return the state after one evaluation: `for:` pending, firing, repeat, resolved."""
    state = row.state if row else RESOLVED
    since = row.since if row else now
    pending = row.pending_since if row else None
    if not active:
        if state == FIRING:
            return Step(state=RESOLVED, since=now, pending_since=None, event=RESOLVED)
        return Step(state=state, since=since, pending_since=None, event=None)
    pending = pending or now
    if state == FIRING:
        notified = row.last_notified_at if row else None
        due = notified is None or now - notified >= rule.repeat_interval
        return Step(state=FIRING, since=since, pending_since=pending, event=REPEAT if due else None)
    if now - pending >= rule.for_:
        return Step(state=FIRING, since=now, pending_since=pending, event=FIRING)
    return Step(state=state, since=since, pending_since=pending, event=None)


def _compare_and_set(engine: Engine, rule: str, version: int, values: dict[str, Any]) -> bool:
    a = t.alert
    with engine.begin() as conn:
        done = conn.execute(
            update(a)
            .where(a.c.rule == rule, a.c.version == version)
            .values(**values, version=version + 1)
        )
    return done.rowcount == 1


def _claim_free(row: AlertState, now: datetime) -> bool:
    return row.claimed_until is None or row.claimed_until <= now


def _outbox(rule: Rule, step: Step, value, summary: str, now: datetime, targets: list[str]):
    return {
        "id": f"{step.event}@{now.isoformat()}",
        "rule": rule.name,
        "state": step.state,
        "repeat": step.event == REPEAT,
        "since": step.since.isoformat(),
        "value": value,
        "summary": summary,
        "severity": rule.severity,
        "repeat_interval_s": rule.repeat_interval.total_seconds(),
        "pending": targets,
        "attempts": 0,
        "errors": {},
    }


def notification_of(outbox: dict[str, Any]) -> Notification:
    """Return the notification an outbox owes."""
    return Notification(
        rule=outbox["rule"],
        state=outbox["state"],
        severity=outbox["severity"],
        value=outbox["value"],
        since=datetime.fromisoformat(outbox["since"]),
        summary=outbox["summary"],
        repeat=outbox["repeat"],
        repeat_interval=timedelta(seconds=outbox["repeat_interval_s"]),
    )


def state_settle(
    engine: Engine,
    rule: Rule,
    *,
    active: bool,
    value: float | None,
    summary: str,
    detail: dict[str, Any],
    now: datetime,
    notifiers: dict[str, NotifierConfig],
) -> tuple[AlertState, Step, dict[str, Any] | None]:
    """Write one evaluation; return the row written, its step, and the outbox this run claimed."""
    for _ in range(_CAS_ATTEMPTS):
        row = state_read(engine, rule.name)
        if row is None:
            state_create(engine, rule, now)
            continue
        step = step_next(row, rule, active, now)
        values: dict[str, Any] = {
            "state": step.state,
            "since": step.since,
            "pending_since": step.pending_since,
            "severity": rule.severity,
            "last_value": value,
            "summary": summary[:500],
            "detail": detail,
            "last_evaluated_at": now,
        }
        outbox = row.outbox
        if step.event:
            targets = [n.name for n in notifiers.values() if n.wants(rule.severity)]
            outbox = _outbox(rule, step, value, summary, now, targets) if targets else None
            values["outbox"] = outbox
            values["last_notified_at"] = now
        claimed = None
        if outbox and outbox["pending"] and _claim_free(row, now):
            lease = sum((notifiers[n].timeout for n in outbox["pending"] if n in notifiers), 0.0)
            values["claimed_until"] = now + _LEASE_MARGIN + timedelta(seconds=lease)
            claimed = outbox
        if _compare_and_set(engine, rule.name, row.version, values):
            written = AlertState(**{**row.__dict__, **values, "version": row.version + 1})
            return written, step, claimed
    raise RuntimeError(f"rule {rule.name}: its alert row kept changing under this run")


def outbox_deliver(
    engine: Engine, outbox: dict[str, Any], notifiers: dict[str, NotifierConfig]
) -> Delivery:
    """Send a claimed outbox to the notifiers it owes, then record who is still owed."""
    notification = notification_of(outbox)
    delivery = Delivery()
    for name in outbox["pending"]:
        config = notifiers.get(name)
        if config is None:
            continue  # no longer configured: nothing is owed to it
        try:
            notification_send(config, notification)
        except NotifierError as exc:
            delivery.failed[name] = str(exc)
        except Exception as exc:
            # A notifier's own bug must not stop the others, nor pass for a delivery.
            delivery.failed[name] = f"notifier error: {type(exc).__name__}"
        else:
            delivery.delivered.append(name)
    for _ in range(_CAS_ATTEMPTS):
        row = state_read(engine, outbox["rule"])
        values: dict[str, Any] = {"claimed_until": None}
        if row.outbox and row.outbox["id"] == outbox["id"]:
            values["outbox"] = (
                {
                    **outbox,
                    "pending": list(delivery.failed),
                    "attempts": outbox["attempts"] + 1,
                    "errors": delivery.failed,
                }
                if delivery.failed
                else None
            )
        # else a newer transition replaced it while this run was sending: leave that one.
        if _compare_and_set(engine, row.rule, row.version, values):
            return delivery
    raise RuntimeError(f"rule {outbox['rule']}: its alert row kept changing under this run")
