"""End to end: known traffic through the backend, then every retailctl command on its results."""

import json
import os
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select
from typer.testing import CliRunner

from retailctl.cli import app
from retailctl.core import tables as t
from tests.support.databases import throwaway_postgres
from tests.support.servers import run_python

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("drive_traffic.py")
TOKEN = "e2e-metrics-token"
runner = CliRunner()


def _run_driver(mode: str, env: dict) -> dict:
    stdout = run_python(str(DRIVER), mode, env=env, timeout=120)
    marked = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert len(marked) == 1, stdout[-3000:]
    return json.loads(marked[0][len("RESULT ") :])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(request, tmp_path_factory):
    """Run the traffic once per database; yield its URL, log dir and what was done."""
    base = tmp_path_factory.mktemp("e2e")
    with ExitStack() as stack:
        if request.param == "sqlite":
            database_url = f"sqlite:///{base / 'retail.sqlite3'}"
        else:
            server = request.getfixturevalue("postgres_server_url")
            database_url = stack.enter_context(throwaway_postgres(server, prefix="retail_e2e"))
        yield _drive(base, database_url)


def _drive(base: Path, database_url: str) -> dict:
    log_dir = base / "logs"
    log_dir.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "RETAIL_LOG_DIR": str(log_dir),
        "RETAIL_METRICS_TOKEN": TOKEN,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT / "backend"), str(PROJECT_ROOT)]),
    }
    done = _run_driver("drive", env)
    api = _run_driver("api", {**env, "RETAIL_OBSERVABILITY": "off"})
    return {"url": database_url, "logs": str(log_dir), "done": done, "api": api}


def _cli(*args):
    return runner.invoke(app, list(args))


def test_metrics_json_equals_the_traffic_and_the_api(shop):
    """metrics --json counts exactly what was done, and /metrics/api/ answers the same document."""
    result = _cli("metrics", "--days", "7", "--json", "--database-url", shop["url"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    calls = shop["done"]["calls"]
    kpis = document["kpis"]
    assert kpis["orders_total"] == shop["done"]["paid_orders"] == 4
    assert kpis["refunds_total"] == 1
    assert kpis["requests_total"] == len(calls)
    assert kpis["errors_total"] == sum(1 for call in calls if call["status"] >= 400)
    # Two cards declined by their issuer: no failure of the payment service.
    assert kpis["payment_success_rate"] == 100.0
    assert kpis["payment_decline_rate"] == pytest.approx(100 * 2 / 6, abs=1e-3)
    assert document["daily"][-1]["orders"] == 4
    assert shop["api"]["status"] == 200
    api_document = shop["api"]["document"]
    api_document["window"].pop("end")
    document["window"].pop("end")
    # The API adds the alert keys (alerts_firing, anomalies) to the CLI's document.
    assert {key: api_document[key] for key in document} == document
    assert (api_document["alerts_firing"], api_document["anomalies"]) == ([], [])


def test_trace_returns_the_requests_records_in_order(shop):
    """trace of a response's X-Request-ID shows that request's records, oldest first."""
    request_id = "e2e-order-0"
    assert request_id in {call["request_id"] for call in shop["done"]["calls"]}
    result = _cli("trace", request_id, "--json", "--log-dir", shop["logs"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {record["request_id"] for record in records} == {request_id}
    events = [record.get("event") for record in records]
    assert events[0] == "http.request" and events[-1] == "http.response"
    assert records[-1]["status_code"] == 201
    stamps = [record["timestamp"] for record in records]
    assert stamps == sorted(stamps)
    table = _cli("trace", request_id, "--log-dir", shop["logs"])
    assert table.exit_code == 0 and "http.response" in table.stdout


def test_scenarios_verdicts(shop):
    """A1 passes (ledger balanced); A2 passes: 2 declines of 6 are the customers' answers."""
    result = _cli("scenarios", "--json", "--database-url", shop["url"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["A1"]["status"] == "PASS"
    assert document["A1"]["oversold_products"] == 0
    assert document["A2"]["status"] == "PASS"
    assert document["A2"]["payment_success_rate"] == 100.0
    assert document["A2"]["payments_declined"] == 2


def test_prune_deletes_exactly_the_rows_older_than_the_cutoff(shop):
    """prune --older-than-days 5 deletes the rows stamped 6 and 9 days ago, nothing newer."""
    from retailctl.core.db import database_url_resolve

    engine = create_engine(database_url_resolve(shop["url"]))
    now = datetime.now(UTC)
    with engine.begin() as conn:
        before = conn.execute(select(func.count()).select_from(t.metric)).scalar_one()
        conn.execute(
            insert(t.metric),
            [
                {
                    "metric_type": "avg_response_time",
                    "value": 1.0,
                    "metadata": None,
                    "recorded_at": now - timedelta(days=days),
                }
                for days in (9, 6, 4)
            ],
        )
    result = _cli("prune", "--older-than-days", "5", "--json", "--database-url", shop["url"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["deleted"] == 2
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(t.metric)).scalar_one()
    engine.dispose()
    assert after == before + 1
