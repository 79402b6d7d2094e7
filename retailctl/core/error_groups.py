"""Error groups (SPEC §3.6): the `error_rate` rows of a window, grouped by fingerprint.

The groups are counted from the raw `retail_metric` rows — the source of truth — through
their (metric_type, recorded_at) index, so a row inserted by another tool counts, and
`retailctl prune` lowers a group's count by exactly the rows it deletes. A row without a
fingerprint (recorded before groups existed, or by another tool) is grouped by its route
and status, as the backend would fingerprint it.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, and_, cast, func, literal, select

from retailctl.core import tables as t
from retailctl.core.window import Window, window_for

ERROR_RATE = "error_rate"


@dataclass(frozen=True)
class ErrorGroup:
    """Errors of one kind over the window."""

    fingerprint: str
    count: int
    first_seen: datetime
    last_seen: datetime
    route: str | None
    status_code: int | None
    error: str | None
    exception: str | None
    sample_request_id: str | None

    def to_document(self) -> dict[str, Any]:
        """Return the group as `retailctl errors --json` prints it."""
        return {
            "fingerprint": self.fingerprint,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "route": self.route,
            "status_code": self.status_code,
            "error": self.error,
            "exception": self.exception,
            "sample_request_id": self.sample_request_id,
        }


def _field(name: str):
    return t.metric.c.metadata[name].as_string()


def _group_key():
    # Legacy rows: route (else path) and status, the parts of a non-exception fingerprint.
    fallback = func.coalesce(_field("route"), _field("path"), literal("")) + literal(" ")
    return func.coalesce(_field("fingerprint"), fallback + func.coalesce(_field("status_code"), ""))


def error_groups(
    conn: Connection, *, days: int, limit: int | None = None, now: datetime | None = None
) -> tuple[Window, list[ErrorGroup]]:
    """Return the window and its error groups, the most frequent first."""
    window = window_for(days=days, now=now)
    m = t.metric
    key = _group_key().label("key")
    in_window = and_(
        m.c.metric_type == ERROR_RATE,
        m.c.recorded_at >= window.start,
        m.c.recorded_at < window.end,
    )
    query = (
        select(
            key,
            func.count().label("count"),
            func.min(m.c.recorded_at),
            func.max(m.c.recorded_at),
            func.max(func.coalesce(_field("route"), _field("path"))),
            func.max(cast(_field("status_code"), String)),
            func.max(_field("error")),
            func.max(_field("exception")),
        )
        .where(in_window)
        .group_by(key)
        .order_by(func.count().desc(), key)
    )
    if limit is not None:
        query = query.limit(limit)
    groups = []
    for fingerprint, count, first, last, route, status, error, exception in conn.execute(query):
        sample = conn.execute(
            select(_field("request_id"))
            .where(in_window, m.c.recorded_at >= last, _group_key() == fingerprint)
            .order_by(m.c.id.desc())
            .limit(1)
        ).scalar()
        groups.append(
            ErrorGroup(
                fingerprint=fingerprint,
                count=int(count),
                first_seen=_aware(first),
                last_seen=_aware(last),
                route=route,
                status_code=int(status) if status and str(status).isdigit() else None,
                error=error,
                exception=exception,
                sample_request_id=sample,
            )
        )
    return window, groups


def error_groups_document(
    conn: Connection, *, days: int, limit: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Return `retailctl errors --json`'s document."""
    window, groups = error_groups(conn, days=days, limit=limit, now=now)
    return {
        "window": {
            "days": window.days,
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
        },
        "groups": [group.to_document() for group in groups],
    }


def _aware(value: Any) -> datetime:
    # min()/max() over the column bypass its type on SQLite: the stored text comes back.
    return t.UtcDateTime().process_result_value(value, None)
