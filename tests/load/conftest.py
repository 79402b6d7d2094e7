"""Fixtures of the load and fault tests: a database per test, on SQLite or PostgreSQL."""

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """A fresh database for one test: a tmp SQLite file, or a throwaway PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'load.sqlite3'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def log_dir(tmp_path):
    """A log directory of the server processes of one test."""
    path = tmp_path / "logs"
    path.mkdir()
    return path
