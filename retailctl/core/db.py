"""The database engine from DATABASE_URL / --database-url (SPEC §2)."""

import os
import re
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
        resolved = f"postgresql+psycopg://{rest}"
        try:
            make_url(resolved).port  # noqa: B018  (parses host and port, or raises)
        except (ArgumentError, ValueError):
            raise UsageError(f"malformed database URL: {_redact(raw)}") from None
        return resolved
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path or path == ":memory:":
            raise UsageError("an in-memory SQLite database holds no backend data")
        return f"sqlite:///{Path(path).expanduser().resolve()}"
    raise UsageError(f"unsupported database scheme {scheme!r}: use sqlite:// or postgresql://")


# The password of `scheme://user:password@…`, found without parsing the rest.
_PASSWORD = re.compile(r"(?<=://)([^/@:]*):[^/]*@")


def _redact(url: str) -> str:
    """Return the URL with its password masked, even when the URL does not parse."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1:***@", url)


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
    except SQLAlchemyError as exc:
        engine.dispose()
        raise DatabaseUnavailable(database_error_message(exc, shown)) from None
    return engine


# What SQLite and PostgreSQL say when a table or column the read model needs is not there.
_SCHEMA_MISSING = re.compile(
    r"no such (table|column)|(relation|column) .* does not exist|UndefinedTable|UndefinedColumn"
)


def database_error_message(exc: SQLAlchemyError, shown: str = "") -> str:
    """Return one line for a database error: unreachable, or reachable without the schema."""
    where = f" ({shown})" if shown else ""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        reason = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
        if _SCHEMA_MISSING.search(f"{type(exc.orig).__name__} {reason}"):
            # The database answered: it only lacks (some of) the tables.
            return f"database schema missing or out of date{where}: run `make migrate`"
    else:
        reason = type(exc).__name__
    return f"database unreachable{where}: {reason}"


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
