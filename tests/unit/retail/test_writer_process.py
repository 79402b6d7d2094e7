"""The writer process: rows and lines leave the server process; none is lost, no row doubled.

Each test runs tests/support/writer_process_driver.py as a server process of its own on a
fresh migrated database, with production's RETAIL_METRICS_WRITER=process, and counts the
rows in that database afterwards. The metric side's tests run on SQLite and PostgreSQL
(a copy of a template migrated once, when RETAIL_TEST_POSTGRES_URL is set).
"""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.databases import throwaway_postgres
from tests.support.load import execute, query
from tests.support.servers import backend_env, manage, run_python

DRIVER = Path(__file__).resolve().parents[2] / "support" / "writer_process_driver.py"


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("metric-writer") / "template.sqlite3"
    env = backend_env(database_url=f"sqlite:///{path}", log_dir=path.parent)
    manage(env, "migrate", "--noinput")
    return path


@pytest.fixture(scope="module")
def postgres_template(postgres_server_url, tmp_path_factory) -> Iterator[str]:
    """A migrated PostgreSQL database that each test's database is copied from."""
    log_dir = tmp_path_factory.mktemp("metric-writer-postgres")
    with throwaway_postgres(postgres_server_url, prefix="retail_tmpl") as url:
        manage(backend_env(database_url=url, log_dir=log_dir), "migrate", "--noinput")
        yield url.rpartition("/")[2]


@pytest.fixture
def database_url(request, sqlite_template, tmp_path) -> Iterator[str]:
    """A fresh migrated database: SQLite unless the test asks for PostgreSQL."""
    if getattr(request, "param", "sqlite") == "sqlite":
        database = tmp_path / "metrics.sqlite3"
        database.write_bytes(sqlite_template.read_bytes())
        yield f"sqlite:///{database}"
        return
    template = request.getfixturevalue("postgres_template")
    server_url = request.getfixturevalue("postgres_server_url")
    with throwaway_postgres(server_url, prefix="retail_t", template=template) as url:
        yield url


# The metric side's faults on both databases (COPY and its errors on PostgreSQL, the
# executemany of SQLite); the log side has no database.
both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def server(database_url, tmp_path):
    """Run the driver's scenario against `database_url`; return what it saw."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()

    def run(scenario: str) -> dict:
        env = backend_env(
            database_url=database_url,
            log_dir=log_dir,
            RETAIL_LOG_STDOUT="off",
            RETAIL_METRICS_WRITER="process",
        )
        stdout = run_python(str(DRIVER), scenario, env=env, timeout=120)
        return json.loads(stdout.splitlines()[-1])

    run.url = database_url
    run.log_dir = log_dir
    return run


def _values(url: str) -> list[float]:
    return [value for (value,) in query(url, "SELECT value FROM retail_metric ORDER BY value")]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _records(log_dir: Path, event: str) -> list[dict]:
    lines = (log_dir / "application.log").read_text("utf-8").splitlines()
    return [record for record in map(json.loads, lines) if record.get("event") == event]


@both_databases
def test_a_flush_is_written_by_a_child_and_the_exit_writes_the_rest(server):
    """flush_metrics() returns once the child committed; exit writes the rest, ends the child.

    Each batch's token is recorded, and a token past its retention is pruned.
    """
    old = datetime.now(UTC) - timedelta(days=2)
    execute(
        server.url,
        "INSERT INTO retail_metric_batch (token, written_at) VALUES ('old', :at)",
        # SQLite's column holds Django's text form of a UTC time.
        at=old.strftime("%Y-%m-%d %H:%M:%S") if server.url.startswith("sqlite") else old,
    )
    seen = server("exit")
    assert seen["writer"] == "MetricRowsWriter" and seen["flushed"] is True
    assert seen["writer_pid"] != seen["own_pid"] and seen["writer_parent"] == seen["own_pid"]
    assert _values(server.url) == [float(n) for n in range(60)]
    assert not _alive(seen["writer_pid"])
    tokens = [token for (token,) in query(server.url, "SELECT token FROM retail_metric_batch")]
    assert len(tokens) == 2 and "old" not in tokens


@both_databases
def test_a_killed_child_is_replaced_and_loses_no_row(server):
    """A child SIGKILLed between batches: the next batch starts a new one; each row lands once.

    No batch failed: the log says which child died, and of what.
    """
    seen = server("kill")
    assert seen["flushed"] is True and seen["flushes"][-1] is True
    assert seen["second_pid"] != seen["first_pid"]
    assert _values(server.url) == [float(n) for n in range(20)]
    (exited,) = _records(server.log_dir, "writer_process.exited")
    assert (exited["pid"], exited["exit_code"]) == (seen["first_pid"], -9)
    assert exited["level"] == "WARNING" and "signal SIGKILL" in exited["message"]


@both_databases
def test_the_child_outlives_sigterm_to_write_what_its_parent_still_sends(server):
    """SIGTERM to the process group: the child writes on until its parent exits."""
    seen = server("terminate")
    assert seen["flushes"] == [True] and seen["second_pid"] == seen["first_pid"]
    assert _values(server.url) == [float(n) for n in range(20)]


@both_databases
def test_a_child_that_does_not_answer_is_replaced_and_the_batch_kept(server):
    """A stopped child: the flush times out and keeps the rows; a new child writes them.

    This process killed it: it did not exit by itself.
    """
    seen = server("stopped")
    assert seen["flushed"] is True
    assert seen["flushes"][0] is False and seen["flushes"][-1] is True
    assert seen["second_pid"] != seen["first_pid"]
    assert _values(server.url) == [float(n) for n in range(10)]
    assert _records(server.log_dir, "writer_process.exited") == []


@both_databases
def test_a_database_failure_in_the_child_keeps_the_batch_for_the_retry(server):
    """The child's INSERT fails (its table is gone): the rows wait, the same child writes them."""
    seen = server("unavailable")
    assert seen["flushed"] is True
    assert seen["flushes"][0] is False and seen["flushes"][-1] is True
    assert seen["second_pid"] == seen["first_pid"]
    assert _values(server.url) == [float(n) for n in range(10)]


@both_databases
def test_a_batch_whose_answer_was_lost_is_not_written_twice(server):
    """The child commits and dies before its answer is read: the retry skips those rows.

    The retry, joined by new rows, first fails with an answer (the table is gone), then
    meets a row the database refuses and is halved: each row still lands once.
    """
    seen = server("answer-lost")
    assert seen["flushed"] is True
    assert seen["flushes"][:2] == [False, False] and seen["flushes"][-1] is True
    assert seen["second_pid"] != seen["first_pid"]
    assert _values(server.url) == [float(n) for n in range(15)]
    [refused] = _records(server.log_dir, "metric.refused")
    assert refused["refused"] == 1
    assert seen["unanswered_left"] == 0
    [(tokens,)] = query(server.url, "SELECT count(*) FROM retail_metric_batch")
    assert tokens >= 3


@both_databases
def test_a_row_the_database_refuses_in_the_child_only_loses_itself(server):
    """The child's answer tells a refusal from a failure: the buffer isolates the row as before.

    A row whose metadata is not JSON never reaches the child: it is left out and counted.
    """
    seen = server("refused")
    assert seen["flushed"] is True and seen["flushed_unwritable"] is True
    assert _values(server.url) == [float(n) for n in range(11)]
    [refused] = _records(server.log_dir, "metric.refused")
    assert refused["refused"] == 1
    [unwritable] = _records(server.log_dir, "metric.unwritable")
    assert unwritable["rows"] == 1


def _lines(log_dir: Path, event: str = "driver.event") -> list[str]:
    lines = (log_dir / "application.log").read_text("utf-8").splitlines()
    return [line for line in lines if json.loads(line).get("event") == event]


def _sequence(lines: list[str]) -> list[int]:
    return [json.loads(line)["seq"] for line in lines]


def test_the_child_writes_the_lines_this_process_would_write(server):
    """Lines formatted in the child are byte for byte those this process makes of them."""
    seen = server("logs")
    assert seen["ready"] is True
    assert seen["formatted_here_by_child"] == 0 and seen["formatted_here"] == 6
    lines = _lines(server.log_dir)
    assert len(lines) == 12 and lines[:6] == lines[6:]
    first = json.loads(lines[0])
    assert first["price"] == "9.99" and first["at"].startswith("2026-12-06T00:00:00")
    second = json.loads(lines[1])
    assert second["pair"] == [1, "a"] and second["by_id"] == {"7": "seven"}
    assert second["error"] == "ValueError: bad"
    assert json.loads(lines[2])["text"] == "caf\u00e9 \u2603"


def test_a_killed_child_loses_no_line(server):
    """The child SIGKILLed: this process writes the batch itself, each line once, and says so."""
    seen = server("logs-kill")
    assert seen["formatted_here"] == 10
    assert _sequence(_lines(server.log_dir)) == list(range(25))
    assert "log.writer_process_failed" in seen["stderr"]
    assert len(_records(server.log_dir, "writer_process.exited")) == 1


def test_a_child_that_does_not_answer_is_replaced_and_the_lines_written_here(server):
    """A stopped child: the flush waits its reply timeout, then writes the lines itself."""
    seen = server("logs-stopped")
    assert seen["formatted_here"] == 10 and seen["stopped_alive"] is False
    assert _sequence(_lines(server.log_dir)) == list(range(10))


def test_lines_left_at_exit_go_through_the_child_before_it_ends(server):
    """logging's shutdown sends the last batch; the child writes it and exits."""
    seen = server("logs-exit")
    assert seen["formatted_here"] == 0
    assert _sequence(_lines(server.log_dir)) == list(range(10))
    assert not _alive(seen["first_pid"])


def test_a_short_command_starts_no_child_for_its_lines(server):
    """A few lines are written here; a process that keeps logging starts the child."""
    seen = server("logs-short")
    assert seen["pid_after_short"] is None
    assert seen["started_pid"] is not None and seen["ready"] is True
    assert seen["formatted_here_after_ready"] == 0
    assert _sequence(_lines(server.log_dir)) == list(range(2020))


def test_logging_configured_again_leaves_the_metric_rows_a_writer(server):
    """The first JSON handler closed by a second dictConfig: the rows still get written."""
    seen = server("reconfigured")
    assert seen["flushed"] is True and seen["flushes"][-1] is True
    assert seen["second_pid"] is not None
    assert _values(server.url) == [float(n) for n in range(10)]
