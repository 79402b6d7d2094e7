"""Throwaway PostgreSQL databases, for the `fresh_postgres_url` fixture and the benchmarks."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def throwaway_postgres(
    server_url: str, *, prefix: str = "retail_b", template: str | None = None
) -> Iterator[str]:
    """Create a PostgreSQL database (a copy of `template`, if given), yield its URL, drop it."""
    import psycopg
    from psycopg import sql

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    base, _, _ = server_url.rpartition("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(create)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
