"""A request's log records as a timeline: the rows `retailctl trace` and the request page show.

One place turns records into rows (time, offset from the first, service, level, logger,
event and salient fields), so the CLI's table and the staff request page always show
the same lines the same way.
"""

from dataclasses import dataclass
from typing import Any

from retailctl.core.logs import LogRecord, clean_text, service_of

# Fields of a log record shown in a timeline, in this order, when present.
SALIENT_FIELDS = (
    "method",
    "path",
    "route",
    "status_code",
    "duration_ms",
    "user_id",
    "ip",
    "order_id",
    "payment_id",
    "refund_id",
    "charge_id",
    "product_id",
    "sku",
    "amount",
    "outcome",
    "metric_type",
    "breaker",
    "from",
    "to",
    "reason",
    "retry_after",
    "error",
    "fingerprint",
    "exc_info",
)


@dataclass(frozen=True)
class TraceRow:
    """One record of a timeline, as text."""

    time: str
    offset_ms: str
    service: str
    level: str
    logger: str
    summary: str
    fields: list[str]


def record_fields(data: dict[str, Any]) -> list[str]:
    """Return the salient fields of one record, each as `key=value` text."""
    parts = []
    for key in SALIENT_FIELDS:
        value = data.get(key)
        if value is None or value == "":
            continue
        text = clean_text(value)
        if key == "exc_info":
            # The end of a traceback: the exception and where it was raised.
            text = text.strip()[-200:]
        parts.append(f"{key}={text}")
    return parts


def record_summary(data: dict[str, Any]) -> str:
    """Return the event, or the message, of a record."""
    event = data.get("event")
    message = data.get("message")
    if event and message and message != event:
        return clean_text(f"{event}: {message}")
    return clean_text(event or message or "")


def trace_rows(records: list[LogRecord]) -> list[TraceRow]:
    """Return each record's time, +ms from the first, service, level, logger, summary, fields."""
    first = records[0].timestamp if records else None
    rows = []
    for record in records:
        stamp = record.timestamp
        offset = f"{(stamp - first).total_seconds() * 1000:,.1f}" if stamp and first else "?"
        rows.append(
            TraceRow(
                time=stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if stamp else "?",
                offset_ms=offset,
                service=service_of(record),
                level=record.level or "-",
                logger=clean_text(record.data.get("logger") or "-"),
                summary=record_summary(record.data),
                fields=record_fields(record.data),
            )
        )
    return rows
