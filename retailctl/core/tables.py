"""SQLAlchemy Core tables mirroring the backend's Django tables (checked by a schema test)."""

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)
from sqlalchemy.types import DateTime, TypeDecorator

metadata = MetaData()


class UtcDateTime(TypeDecorator):
    """A Django `DateTimeField`: timestamptz on PostgreSQL, Django's text format on SQLite.

    On SQLite Django stores 'YYYY-MM-DD HH:MM:SS[.ffffff]' and compares as text, so bound
    values use that very format (SQLAlchemy's own always adds '.000000', which sorts after
    a row stored at the same whole second). Results are aware UTC datetimes everywhere.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

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
