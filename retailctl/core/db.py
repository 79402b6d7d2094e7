"""The database engine from DATABASE_URL / --database-url (SPEC §2)."""

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from retailctl.core.errors import DatabaseUnavailable, UsageError
from retailctl.core.paths import DEFAULT_SQLITE_PATH


def database_url_resolve(url: str | None = None) -> str:
    """Return the SQLAlchemy URL for a SPEC database URL (psycopg 3, absolute SQLite path)."""
    raw = (url or os.environ.get("DATABASE_URL", "")).strip()
    if not raw:
        return f"sqlite:///{DEFAULT_SQLITE_PATH}"
    scheme, sep, rest = raw.partition("://")
    if not sep:
        raise UsageError(f"not a database URL: {_redact(raw)}")
    if scheme in {"postgres", "postgresql", "postgresql+psycopg", "pgsql"}:
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:":
            raise UsageError("an in-memory SQLite database holds no backend data")
        return f"sqlite:///{Path(path).expanduser().resolve()}"
    raise UsageError(f"unsupported database scheme {scheme!r}: use sqlite:// or postgresql://")


def _redact(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def engine_create(url: str | None = None, *, must_exist: bool = True) -> Engine:
    """Create an engine and check the database answers; raise DatabaseUnavailable if not."""
    resolved = database_url_resolve(url)
    shown = _redact(resolved)
    sa_url = make_url(resolved)
    if sa_url.get_backend_name() == "sqlite":
        if must_exist and not Path(sa_url.database).is_file():
            raise DatabaseUnavailable(
                f"database unreachable: no SQLite file at {sa_url.database} "
                "(run `make migrate` or set DATABASE_URL)"
            )
        engine = create_engine(sa_url, connect_args={"timeout": 20})
        event.listen(engine, "connect", _sqlite_on_connect)
    else:
        engine = create_engine(
            sa_url, connect_args={"connect_timeout": 5}, pool_pre_ping=True, pool_size=2
        )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM retail_metric_rollup WHERE 1 = 0"))
    except DBAPIError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        if "retail_metric_rollup" in reason:
            reason = "the schema is missing or old (run `python backend/manage.py migrate`)"
        raise DatabaseUnavailable(f"database unreachable ({shown}): {reason}") from None
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseUnavailable(f"database unreachable ({shown}): {exc}") from None
    return engine


def _sqlite_on_connect(dbapi_connection, connection_record) -> None:
    # The backend writes in WAL mode; a reader beside it must wait, not fail, on a lock.
    dbapi_connection.execute("PRAGMA busy_timeout = 20000")


def insert_ignoring_conflicts(dialect_name: str, table, *, key: list[str]):
    """Return an INSERT that skips rows whose `key` exists (SQLite and PostgreSQL)."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing(index_elements=key)
