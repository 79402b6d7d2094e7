"""gunicorn workers write their buffered metric rows and log lines when they stop."""

import json

import httpx
import pytest

from tests.support.load import query
from tests.support.servers import GunicornServer, backend_env

pytestmark = pytest.mark.load

REQUESTS = 60


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'exit.sqlite3'}"
    return request.getfixturevalue("fresh_postgres_url")


def test_a_graceful_stop_leaves_every_row_and_line(database_url, tmp_path):
    """Requests to 2 workers, then SIGTERM at once: one row per request and error, one line each."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    env = backend_env(database_url=database_url, log_dir=log_dir)
    with GunicornServer(env, workers=2) as server, httpx.Client(base_url=server.url) as http:
        for n in range(REQUESTS):
            response = http.get("/api/products/999999/", headers={"X-Request-ID": f"stop-{n}"})
            assert response.status_code == 404 and response.headers["X-Request-ID"] == f"stop-{n}"
    # The server has stopped: whatever the workers buffered must be written by now.
    counts = dict(
        query(database_url, "SELECT metric_type, count(*) FROM retail_metric GROUP BY metric_type")
    )
    assert counts == {"avg_response_time": REQUESTS, "error_rate": REQUESTS}
    records = [
        json.loads(line)
        for path in sorted(log_dir.glob("application.log*"))
        for line in path.read_text("utf-8").splitlines()
    ]
    responses = [r["request_id"] for r in records if r.get("event") == "http.response"]
    assert sorted(responses) == sorted(f"stop-{n}" for n in range(REQUESTS))
