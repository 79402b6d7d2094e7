"""Reuse the read-model fixtures (migrated databases, row writers) of tests/unit/core."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "_read_model_fixtures", Path(__file__).parents[1] / "core" / "conftest.py"
)
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)

sqlite_template = _fixtures.sqlite_template
postgres_session_url = _fixtures.postgres_session_url
database_url = _fixtures.database_url
rows = _fixtures.rows


@pytest.fixture(autouse=True)
def _no_columns_from_the_shell(monkeypatch):
    """Off a terminal the CLI takes COLUMNS as its width: a test sets it where it means to."""
    monkeypatch.delenv("COLUMNS", raising=False)
