"""Shared fixtures: the optional PostgreSQL and Redis servers, and test markers."""

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_URL_VAR = "RETAIL_TEST_POSTGRES_URL"


def _log_to_session_directory() -> str:
    """Point the JSON logs of in-process tests at a temporary directory, not `logs/`.

    pytest-django has imported the settings and configured logging before this module
    loads, so the directory is swapped in the settings and logging is configured again;
    the first configuration touched no file (the handler opens it at its first write).
    Server processes started by tests inherit `RETAIL_LOG_DIR` unless given their own.
    """
    import logging.config
    import tempfile
    from pathlib import Path

    from django.conf import settings

    log_dir = tempfile.mkdtemp(prefix="retail-test-logs-")
    os.environ["RETAIL_LOG_DIR"] = log_dir
    settings.RETAIL_LOG_DIR = Path(log_dir)
    settings.LOGGING["handlers"]["json"]["filename"] = str(Path(log_dir) / "application.log")
    settings.LOGGING["handlers"]["gateway"]["filename"] = str(Path(log_dir) / "gateway.log")
    logging.config.dictConfig(settings.LOGGING)
    return log_dir


TEST_LOG_DIR = _log_to_session_directory()


@pytest.fixture(autouse=True)
def _synchronous_observability() -> Iterator[None]:
    """Write metric rows and log lines in the calling thread, so tests see them at once."""
    from retail.logging import set_synchronous_logging
    from retail.metrics import set_synchronous_metrics

    set_synchronous_metrics(True)
    set_synchronous_logging(True)
    yield


_DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
}


def pytest_collection_modifyitems(config, items):
    """Mark tests that touch the Django database: `make test` reruns them on PostgreSQL."""
    for item in items:
        if item.get_closest_marker("django_db") or _DATABASE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.database)


def pytest_report_header(config):
    database = os.environ.get("DATABASE_URL", "").split("@")[-1] or "SQLite (default)"
    postgres = "set" if os.environ.get(POSTGRES_URL_VAR) else "not set: PostgreSQL tests skip"
    redis = "set" if os.environ.get("REDIS_URL") else "not set: Redis tests skip"
    return [
        f"database: {database}",
        f"{POSTGRES_URL_VAR}: {postgres}",
        f"REDIS_URL: {redis}",
        f"logs of in-process tests: {TEST_LOG_DIR}",
    ]


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """Return the PostgreSQL server URL for tests, or skip saying why."""
    url = os.environ.get(POSTGRES_URL_VAR)
    if not url:
        pytest.skip(f"{POSTGRES_URL_VAR} is not set: no PostgreSQL server to test against")
    return url


@pytest.fixture
def fresh_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """Create a throwaway PostgreSQL database, yield its URL, drop it afterwards.

    Each test that starts server processes gets its own database, so concurrent test
    runs on one server never see each other's rows.
    """
    from tests.support.databases import throwaway_postgres

    with throwaway_postgres(postgres_server_url, prefix="retail_t") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Return the Redis URL for tests, or skip saying why."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL is not set: no Redis server to test against")
    return url


@pytest.fixture(autouse=True)
def _isolated_shared_state() -> Iterator[None]:
    """Give each test its own throttle counters and breaker state (a fresh key namespace).

    The checkout throttle counts per client across tests otherwise (every test client
    is 127.0.0.1), and with `REDIS_URL` set it would count across test runs too.
    """
    from django.conf import settings

    previous = settings.RETAIL_SHARED_STATE_PREFIX
    prefix = settings.RETAIL_SHARED_STATE_PREFIX = f"retail-test-{uuid.uuid4().hex[:12]}"
    yield
    settings.RETAIL_SHARED_STATE_PREFIX = previous
    if settings.REDIS_URL:
        # Breaker keys never expire: leave nothing of this test behind in Redis.
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            for key in client.scan_iter(f"*{prefix}*"):
                client.delete(key)
        finally:
            client.close()
