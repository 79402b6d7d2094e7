"""Fixtures of the read-model tests: migrated SQLite and PostgreSQL databases, row writers.

The schema comes from the backend's real migrations (triggers included), run once per
session into a template; each test gets a fresh copy (SQLite) or emptied tables (PostgreSQL).
"""

import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, text

from retailctl.core import tables as t
from retailctl.core.db import database_url_resolve

PROJECT_ROOT = Path(__file__).resolve().parents[3]
_MIGRATE_TIMEOUT = 180


def migrate(database_url: str) -> None:
    """Run the backend's migrations against `database_url` in a subprocess."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "backend/manage.py", "migrate", "--noinput", "--skip-checks", "-v0"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        timeout=_MIGRATE_TIMEOUT,
    )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "retail.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_session_url(postgres_server_url):
    import psycopg
    from psycopg import sql

    name = f"retail_read_{uuid.uuid4().hex[:10]}"
    base = postgres_server_url.rpartition("/")[0]
    with psycopg.connect(postgres_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{base}/{name}"
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


_DATA_TABLES = (
    "catalog_stockmovement",
    "payments_payment",
    "orders_refund",
    "orders_orderitem",
    "orders_order",
    "catalog_product",
    "retail_metric",
    "retail_metric_rollup",
    "retail_metric_pruned",
    "retail_metric_batch",
    "retail_alert",
    "retail_metric_hourly",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A migrated, empty database: SQLite, and PostgreSQL when RETAIL_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        path = tmp_path / "retail.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_session_url")
    engine = create_engine(database_url_resolve(url))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_DATA_TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


class Rows:
    """Insert business and metric rows with plain SQL, as any other tool could."""

    def __init__(self, url: str):
        self.engine = create_engine(database_url_resolve(url))
        self._key = 0

    def metric(self, metric_type, value=1.0, metadata=None, at: datetime | None = None) -> None:
        self.metrics([(metric_type, value, metadata, at)])

    def metrics(self, rows) -> None:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.metric),
                [
                    {"metric_type": k, "value": v, "metadata": m, "recorded_at": at or now}
                    for k, v, m, at in rows
                ],
            )

    def product(self, *, stock: int = 10, sku: str | None = None) -> int:
        now = datetime.now(UTC)
        self._key += 1
        with self.engine.begin() as conn:
            return conn.execute(
                insert(t.product)
                .values(
                    sku=sku or f"SKU-{self._key}",
                    name="thing",
                    price=5,
                    stock=stock,
                    created_at=now,
                    updated_at=now,
                )
                .returning(t.product.c.id)
            ).scalar_one()

    def order(self, *, status="paid", paid_at=None, created_at=None) -> int:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            return conn.execute(
                insert(t.order)
                .values(
                    status=status,
                    total=10,
                    currency="USD",
                    access_token_hash="x" * 64,
                    created_at=created_at or paid_at or now,
                    updated_at=now,
                    paid_at=paid_at,
                )
                .returning(t.order.c.id)
            ).scalar_one()

    def payment(self, order_id, *, status, latency_ms=None, at=None) -> None:
        self._key += 1
        at = at or datetime.now(UTC)
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.payment).values(
                    order_id=order_id,
                    amount=10,
                    currency="USD",
                    status=status,
                    idempotency_key=f"key-{self._key}-{uuid.uuid4().hex}",
                    gateway_charge_id="",
                    latency_ms=latency_ms,
                    failure_reason="",
                    created_at=at,
                    updated_at=at,
                )
            )

    def refund(self, order_id, *, completed_at, status="succeeded") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.refund).values(
                    order_id=order_id,
                    amount=10,
                    status=status,
                    idempotency_key=uuid.uuid4().hex,
                    gateway_refund_id="",
                    created_by_id=None,
                    created_at=completed_at,
                    completed_at=completed_at,
                )
            )

    def movement(self, product_id, delta, reason="sale") -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.stock_movement).values(
                    product_id=product_id,
                    delta=delta,
                    reason=reason,
                    order_id=None,
                    created_at=datetime.now(UTC),
                )
            )

    def execute(self, sql: str, **params) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)


@pytest.fixture
def rows(database_url):
    writer = Rows(database_url)
    yield writer
    writer.engine.dispose()


@pytest.fixture
def engine(database_url):
    from retailctl.core.db import engine_create

    engine = engine_create(database_url)
    yield engine
    engine.dispose()
