"""SQLAlchemy Core tables mirroring the backend's Django tables (checked by a schema test)."""

from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    literal,
    or_,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import DateTime, TypeDecorator

metadata = MetaData()


class _TimeComparison(ColumnElement[bool]):
    """`column <op> moment` for a UtcDateTime column, comparing times, not their text.

    PostgreSQL compares timestamptz values. SQLite compares text, and a row may hold
    either Django's 'YYYY-MM-DD HH:MM:SS' or the ISO 'T' separator other tools write
    (strftime('%Y-%m-%dT%H:%M:%f')): on the moment's own day every 'T' row sorts after
    every ' ' row. So on SQLite the comparison takes each form of that day against the
    moment written in the same form; other days compare by their date alone. Both
    forms stay range conditions on the bare column, so the recorded_at index serves.
    """

    type = Boolean()
    inherit_cache = True
    # A comparison: in a WHERE on SQLite it needs no "= 1" after it.
    _is_implicitly_boolean = True
    _traverse_internals = [
        ("plain", InternalTraversal.dp_clauseelement),
        ("textual", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: Any, op: Any, moment: datetime, plain: Any) -> None:
        self.plain = plain
        self.textual = _textual_comparison(column, op, moment.astimezone(UTC)).self_group()

    @property
    def _from_objects(self) -> list[Any]:
        # The column's table: `select(func.count()).where(...)` finds its FROM here.
        return self.plain._from_objects


def _textual_comparison(column: Any, op: Any, moment: datetime):
    text = type_coerce(column, String())
    naive = moment.replace(tzinfo=None)
    day = naive.date().isoformat()
    if naive.time() == time() and op in (operators.ge, operators.lt):
        # Midnight (a window's start): every row of the day, in either form, sorts at or
        # after the bare date, and every row of an earlier day before it. One range.
        return op(text, literal(day))
    # 'YYYY-MM-DDT': every ' ' row of the day sorts before it, every 'T' row after it.
    iso_day = literal(day + "T")
    if op in (operators.ge, operators.lt):
        # Equal times written with fewer fraction digits must not sort before the moment.
        fraction = f"{naive.microsecond:06d}".rstrip("0")
        stamp = naive.strftime("%H:%M:%S") + (f".{fraction}" if fraction else "")
    else:
        # ...nor, with more digits ('.000' for '.000000' or none), after it.
        stamp = naive.strftime("%H:%M:%S.%f")
    spaced, iso = literal(f"{day} {stamp}"), literal(f"{day}T{stamp}")
    # Each comparison leads with the one form that every match passes (' ' sorts before
    # 'T'), a single range the index can walk: without it an ORDER BY ... LIMIT walks
    # the whole index, since SQLite cannot bound a walk by an OR.
    if op in (operators.ge, operators.gt):
        # Past the ' ' moment: a ' ' row of the day, or a 'T' row (or later day) past it.
        return and_(op(text, spaced), or_(text < iso_day, op(text, iso)))
    # lt, le: the negation of the above.
    return and_(op(text, iso), or_(op(text, spaced), text >= iso_day))


@compiles(_TimeComparison)
def _compile_time_comparison(element, compiler, **kw):
    return compiler.process(element.plain, **kw)


@compiles(_TimeComparison, "sqlite")
def _compile_time_comparison_sqlite(element, compiler, **kw):
    return compiler.process(element.textual, **kw)


class time_order(ColumnElement):  # noqa: N801  (used like a SQL function)
    """An ORDER BY key of a UtcDateTime column that orders times, not their text.

    On SQLite the time as a Julian day number, whichever form the row holds; it is
    computed for every row it orders, so use it where few rows are sorted.
    """

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type

    @property
    def _from_objects(self) -> list[Any]:
        return self.column._from_objects


@compiles(time_order)
def _compile_time_order(element, compiler, **kw):
    return compiler.process(element.column, **kw)


@compiles(time_order, "sqlite")
def _compile_time_order_sqlite(element, compiler, **kw):
    return f"julianday({compiler.process(element.column, **kw)})"


class UtcDateTime(TypeDecorator):
    """A Django `DateTimeField`: timestamptz on PostgreSQL, Django's text format on SQLite.

    On SQLite Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' and compares as text, so bound
    values use that very format (SQLAlchemy's own always adds '.000000', which sorts after
    a row stored at the same whole second), and comparisons with a datetime also match
    rows written with the ISO 'T' separator (_TimeComparison). Results are aware UTC
    datetimes everywhere, whichever form a row holds.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    class comparator_factory(TypeDecorator.Comparator):  # noqa: N801  (SQLAlchemy's name)
        def operate(self, op, *other, **kwargs):
            plain = super().operate(op, *other, **kwargs)
            if op in _ORDERINGS and len(other) == 1 and isinstance(other[0], datetime):
                return _TimeComparison(self.expr, op, other[0], plain)
            return plain

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs an aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(sep=" ")
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_ORDERINGS = (operators.lt, operators.le, operators.gt, operators.ge)


product = Table(
    "catalog_product",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("sku", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("price", Numeric(10, 2), nullable=False),
    Column("stock", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

order = Table(
    "orders_order",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("status", String(20), nullable=False),
    Column("total", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("access_token_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("paid_at", UtcDateTime, nullable=True),
)

order_item = Table(
    "orders_orderitem",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", BigInteger, ForeignKey("orders_order.id"), nullable=False),
    Column("product_id", BigInteger, ForeignKey("catalog_product.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(10, 2), nullable=False),
)

refund = Table(
    "orders_refund",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", BigInteger, ForeignKey("orders_order.id"), nullable=False, unique=True),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(20), nullable=False, server_default="requested"),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("gateway_refund_id", String(100), nullable=False),
    Column("created_by_id", Integer, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("completed_at", UtcDateTime, nullable=True),
)

payment = Table(
    "payments_payment",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("order_id", BigInteger, ForeignKey("orders_order.id"), nullable=False),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(30), nullable=False),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("replay_token", String(200), nullable=False, server_default=""),
    Column("gateway_charge_id", String(100), nullable=False),
    Column("latency_ms", Float, nullable=True),
    Column("failure_reason", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

metric = Table(
    "retail_metric",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("metric_type", String(64), nullable=False),
    Column("value", Float, nullable=False),
    Column("metadata", JSON, nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
)

metric_rollup = Table(
    "retail_metric_rollup",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("metric_type", String(64), nullable=False),
    Column("day", Date, nullable=False),
    Column("route", String(200), nullable=False),
    Column("status_class", String(3), nullable=False),
    Column("bucket", Integer, nullable=False),
    Column("samples", BigInteger, nullable=False),
    Column("value_sum", Float, nullable=False),
)

# What `retailctl prune` deleted (retail migration 0004): lifetime totals = rollup + this.
metric_pruned = Table(
    "retail_metric_pruned",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("metric_type", String(64), nullable=False),
    Column("status_class", String(3), nullable=False),
    Column("bucket", Integer, nullable=False),
    Column("samples", BigInteger, nullable=False),
    Column("value_sum", Float, nullable=False),
)

# Tokens of the metric batches the writer process committed (retail migration 0005), read
# and pruned only by it; mirrored so that the schema check sees every table.
metric_batch = Table(
    "retail_metric_batch",
    metadata,
    Column("token", String(32), primary_key=True),
    Column("written_at", UtcDateTime, nullable=False),
)


# The stock ledger (catalog migration 0002): A1 checks stock == sum(delta) when it exists.
stock_movement = Table(
    "catalog_stockmovement",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("product_id", BigInteger, ForeignKey("catalog_product.id"), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("reason", String(20), nullable=False),
    Column("order_id", BigInteger, ForeignKey("orders_order.id"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

# Alert state (retail migration 0003), written only by retailctl.core.alerts.
alert = Table(
    "retail_alert",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("rule", String(100), nullable=False, unique=True),
    Column("state", String(10), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("since", UtcDateTime, nullable=False),
    Column("pending_since", UtcDateTime, nullable=True),
    Column("last_value", Float, nullable=True),
    Column("summary", String(500), nullable=False),
    Column("detail", JSON, nullable=True),
    Column("last_evaluated_at", UtcDateTime, nullable=False),
    Column("last_notified_at", UtcDateTime, nullable=True),
    Column("outbox", JSON, nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),
    Column("version", Integer, nullable=False),
)

# Hourly stats of complete hours (retail migration 0003), written only by core.series.
metric_hourly = Table(
    "retail_metric_hourly",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("hour", UtcDateTime, nullable=False, unique=True),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("orders", BigInteger, nullable=False),
    Column("latency", JSON, nullable=False),
    Column("computed_at", UtcDateTime, nullable=False),
)
