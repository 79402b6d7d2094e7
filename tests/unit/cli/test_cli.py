"""Every retailctl command through Typer's CliRunner: output, JSON purity and exit codes."""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retailctl.cli import app
from tests.support.unprivileged import unprivileged

runner = CliRunner()
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def invoke(*args: str):
    return runner.invoke(app, list(args))


def _log(path: Path, *records: dict) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _record(second: int, message: str, request_id: str = "rid-1", **extra) -> dict:
    return {
        "timestamp": f"2026-11-28T10:00:{second:02d}.000+00:00",
        "level": "INFO",
        "logger": "retail.request",
        "message": message,
        "request_id": request_id,
        **extra,
    }


def test_metrics_json_is_the_spec_document_and_nothing_else(database_url, rows):
    """metrics --json prints one JSON document: SPEC's keys plus the two route tables."""
    rows.metric("avg_response_time", 12.0, {"route": "api/products/", "status_code": 200})
    rows.metric("error_rate", 1.0, {"route": "<unmatched>", "status_code": 404})
    result = invoke("metrics", "--days", "2", "--json", "--database-url", database_url)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"window", "kpis", "daily", "slowest_routes", "error_routes"}
    assert document["kpis"]["requests_total"] == 1
    assert document["kpis"]["errors_total"] == 1
    assert document["kpis"]["error_rate"] == 100.0
    assert len(document["daily"]) == 2
    [slowest] = document["slowest_routes"]
    assert slowest.pop("p95_ms") == pytest.approx(12.0, rel=0.01)  # a histogram bucket
    assert slowest == {"route": "api/products/", "requests": 1, "errors": 0, "avg_ms": 12.0}
    assert document["error_routes"] == [
        {"route": "<unmatched>", "requests": 0, "errors": 1, "avg_ms": None, "p95_ms": None}
    ]


def test_metrics_table_is_plain_and_uncropped_off_a_terminal(database_url, rows):
    """The Rich view off a terminal has no colour codes and does not crop long routes."""
    route = "/api/" + "very-long-route-segment/" * 8
    rows.metric("avg_response_time", 40.0, {"path": route, "status_code": 200})
    result = invoke("metrics", "--database-url", database_url)
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert route in result.stdout
    for heading in ("KPIs", "Daily trend", "Slowest routes (p95)", "Top error routes"):
        assert heading in result.stdout


def test_scenarios_exit_codes(database_url, rows):
    """scenarios exits 0 when nothing fails and 1 when a scenario FAILs."""
    ok = invoke("scenarios", "--json", "--database-url", database_url)
    assert ok.exit_code == 0
    a2 = json.loads(ok.stdout)["A2"]
    assert (a2["status"], a2["no_data"]) == ("PASS", True)
    assert "PASS (no data)" in invoke("scenarios", "--database-url", database_url).stdout
    at = datetime.now(UTC) - timedelta(minutes=1)
    rows.payment(rows.order(status="payment_failed"), status="declined", at=at)
    assert invoke("scenarios", "--database-url", database_url).exit_code == 0
    rows.payment(rows.order(status="payment_failed"), status="unknown", at=at)
    failed = invoke("scenarios", "--database-url", database_url)
    assert failed.exit_code == 1
    assert "FAIL" in failed.stdout and "payment_success_rate = 0.0" in failed.stdout


def test_prune_dry_run_then_delete(database_url, rows):
    """prune --dry-run counts; prune deletes and says how many; --json is its document."""
    old = datetime.now(UTC) - timedelta(days=100)
    rows.metrics([("avg_response_time", 1.0, None, old)] * 3 + [("error_rate", 1.0, None, None)])
    dry = invoke("prune", "--dry-run", "--database-url", database_url)
    assert dry.exit_code == 0
    assert dry.stdout.startswith("Would delete 3 metric row(s)")
    assert dry.stdout.endswith("(older than 90 days). Dry run.\n")
    one = invoke("prune", "--dry-run", "--older-than-days", "1", "--database-url", database_url)
    assert one.stdout.endswith("(older than 1 day). Dry run.\n")
    done = invoke("prune", "--json", "--batch-size", "2", "--database-url", database_url)
    assert done.exit_code == 0
    document = json.loads(done.stdout)
    assert (document["deleted"], document["batches"], document["older_than_days"]) == (3, 2, 90)


def test_trace_timeline_json_and_exit_codes(tmp_path):
    """trace prints the timeline (exit 0), raw JSON lines, exit 1 on no match, 2 on a bad ID."""
    _log(
        tmp_path / "application.log",
        _record(1, "start", event="http.request", method="GET", path="/api/x/"),
        _record(2, "\x1b[2J[bold red]pwned[/]", event="http.response", status_code=200),
        _record(3, "someone else", request_id="rid-2"),
    )
    shown = invoke("trace", "rid-1", "--log-dir", str(tmp_path))
    assert shown.exit_code == 0, shown.output
    assert "http.request" in shown.stdout and "1,000.0" in shown.stdout
    assert "[bold red]pwned[/]" in shown.stdout and "\x1b" not in shown.stdout
    assert "someone else" not in shown.stdout
    raw = invoke("trace", "rid-1", "--json", "--log-dir", str(tmp_path))
    assert [json.loads(line)["message"] for line in raw.stdout.splitlines()] == [
        "start",
        "\x1b[2J[bold red]pwned[/]",
    ]
    # --json prints the lines exactly as written (the JSON escapes stay escaped).
    written = (tmp_path / "application.log").read_text().splitlines()
    assert raw.stdout.splitlines() == written[:2]
    missing = invoke("trace", "rid-404", "--log-dir", str(tmp_path))
    assert missing.exit_code == 1
    assert "no log record with request ID rid-404" in missing.stderr
    bad = invoke("trace", "bad id!", "--log-dir", str(tmp_path))
    assert bad.exit_code == 2
    assert "invalid request ID" in bad.stderr


def test_tail_last_records_with_filters(tmp_path):
    """tail -n N prints the last N matching records as plain lines."""
    _log(
        tmp_path / "application.log",
        *[_record(i, f"m{i}", level="WARNING" if i % 2 else "INFO") for i in range(10)],
    )
    result = invoke("tail", "-n", "2", "--level", "warning", "--log-dir", str(tmp_path))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and "m7" in lines[0] and "m9" in lines[1]
    assert invoke("tail", "--level", "LOUD", "--log-dir", str(tmp_path)).exit_code == 2


def test_unreachable_database_and_missing_log_dir_exit_3(tmp_path):
    """An unreachable database or missing log directory: exit 3, one line, no traceback."""
    (tmp_path / "empty.sqlite3").write_bytes(b"")
    unmigrated = invoke("metrics", "--database-url", f"sqlite:///{tmp_path}/empty.sqlite3")
    assert unmigrated.exit_code == 3
    assert unmigrated.stderr == (
        "retailctl: error: database schema missing or out of date "
        f"(sqlite:///{tmp_path}/empty.sqlite3): run `make migrate`\n"
    )
    for args in (
        ("metrics", "--database-url", f"sqlite:///{tmp_path}/missing.sqlite3"),
        ("scenarios", "--database-url", "postgresql://u:secret@127.0.0.1:1/x"),
        ("prune", "--database-url", f"sqlite:///{tmp_path}/missing.sqlite3"),
        ("trace", "abc", "--log-dir", str(tmp_path / "nope")),
        ("tail", "--log-dir", str(tmp_path / "nope")),
    ):
        result = invoke(*args)
        assert result.exit_code == 3, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1
        assert "Traceback" not in result.output and "secret" not in result.stderr


def test_usage_errors_exit_2():
    """Bad options are usage errors."""
    assert invoke("metrics", "--days", "0").exit_code == 2
    assert invoke("prune", "--older-than-days", "-1").exit_code == 2
    assert invoke("metrics", "--nope").exit_code == 2


@pytest.mark.parametrize(
    "url", ["postgresql://u:s3cret@[::1:5432/db", "postgres://u:s3cret@host:port/db"]
)
@pytest.mark.parametrize("command", ["metrics", "scenarios", "prune"])
def test_a_malformed_database_url_is_a_usage_error_that_hides_the_password(command, url):
    """exit 2, one line on stderr naming the URL with its password masked."""
    result = invoke(command, "--database-url", url)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        f"retailctl: error: malformed database URL: {url.replace('s3cret', '***')}"
    ]
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_tail_and_trace_show_a_null_level_and_a_huge_timestamp_plainly(tmp_path):
    """A null level prints '-' (not NONE); a timestamp past year 9999 in UTC does not crash."""
    _log(
        tmp_path / "application.log",
        _record(1, "no level", level=None),
        {**_record(2, "far future"), "timestamp": "9999-12-31T23:59:59-05:00"},
    )
    tail = invoke("tail", "--log-dir", str(tmp_path))
    assert tail.exit_code == 0, tail.output
    assert tail.stdout.splitlines() == [
        "9999-12-31T23:59:59-05:00 INFO retail.request rid-1 far future",
        "2026-11-28T10:00:01.000+00:00 - retail.request rid-1 no level",
    ]
    trace = invoke("trace", "rid-1", "--log-dir", str(tmp_path))
    assert trace.exit_code == 0, trace.output
    assert "far future" in trace.stdout and "NONE" not in trace.stdout


def test_tail_skips_an_unreadable_file_with_one_warning(tmp_path):
    """A rotated file the user may not read: one stderr line, the rest printed, exit 0."""
    _log(tmp_path / "application.log.1", _record(1, "unreadable"))
    _log(tmp_path / "application.log", _record(2, "readable"))
    (tmp_path / "application.log.1").chmod(0o000)
    command = [sys.executable, "-m", "retailctl", "tail", "--log-dir", str(tmp_path)]
    result = subprocess.run(
        unprivileged(command), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "retailctl: warning: application.log.1 could not be read (Permission denied); skipped"
    ]
    assert "readable" in result.stdout and "unreadable" not in result.stdout


def test_an_unreadable_log_directory_exits_3(tmp_path):
    """tail and trace on a directory the user may not list: exit 3, one line, no traceback."""
    logs = tmp_path / "logs"
    logs.mkdir()
    _log(logs / "application.log", _record(1, "hidden"))
    logs.chmod(0o000)
    try:
        for args in (["tail"], ["trace", "rid-1"]):
            command = [sys.executable, "-m", "retailctl", *args, "--log-dir", str(logs)]
            result = subprocess.run(
                unprivileged(command), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 3, result.stderr
            assert result.stderr.splitlines() == [
                f"retailctl: error: log directory not readable: {logs} (Permission denied)"
            ]
    finally:
        logs.chmod(0o700)


def test_tail_follow_on_a_directory_named_application_log_exits_3(tmp_path):
    """tail -f when application.log is a directory: exit 3 with one line, no traceback."""
    (tmp_path / "application.log").mkdir()
    result = invoke("tail", "-f", "--log-dir", str(tmp_path))
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines() == [
        f"retailctl: error: cannot follow {tmp_path / 'application.log'}: Is a directory"
    ]


def test_help_imports_no_heavy_module():
    """`retailctl --help` stays fast: SQLAlchemy and Rich are imported by commands, lazily."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, retailctl.cli; print(sorted(sys.modules))"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "sqlalchemy" not in loaded and "'rich'" not in loaded


@pytest.mark.parametrize(
    ("command", "reads"),
    [
        (["metrics"], "--database-url"),
        (["scenarios"], "--database-url"),
        (["prune", "--dry-run"], "--database-url"),
        (["trace", "rid-1"], "--log-dir"),
        (["tail"], "--log-dir"),
    ],
)
def test_each_command_takes_the_source_it_reads_and_no_other(command, reads, tmp_path):
    """SPEC §4: --database-url if it reads the database, --log-dir if it reads logs, never
    an option it would ignore (a usage error, exit 2)."""
    ignored = "--log-dir" if reads == "--database-url" else "--database-url"
    help_text = invoke(command[0], "--help").stdout
    assert reads in help_text and ignored not in help_text
    result = invoke(*command, ignored, str(tmp_path))
    assert result.exit_code == 2
    assert f"No such option: {ignored}" in result.output


def test_tail_follow_survives_rotation_in_a_real_process(tmp_path):
    """`retailctl tail -f` prints records written after a rename-rotation, then stops on SIGTERM."""
    live = tmp_path / "application.log"
    _log(live, _record(0, "before start"))
    command = [sys.executable, "-m", "retailctl", "tail", "-f", "-n", "0", "--json"]
    process = subprocess.Popen(
        [*command, "--log-dir", str(tmp_path)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(json.loads(line)["message"]) for line in process.stdout],
        daemon=True,
    )
    reader.start()
    try:
        deadline = time.monotonic() + 15
        # The follower seeks to the end when it starts: ping until it prints one.
        first = None
        ping = 0
        while first is None and time.monotonic() < deadline:
            with open(live, "a") as stream:
                stream.write(json.dumps(_record(1, f"ping-{ping}")) + "\n")
            ping += 1
            try:
                first = lines.get(timeout=0.3)
            except queue.Empty:
                pass
        assert first is not None and first.startswith("ping-")
        live.rename(tmp_path / "application.log.1")
        _log(live, _record(2, "after rotation"))
        received = []
        while "after rotation" not in received and time.monotonic() < deadline:
            try:
                received.append(lines.get(timeout=0.3))
            except queue.Empty:
                pass
        assert received[-1:] == ["after rotation"]
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


TRACE_LINES = [
    _record(1, "http.request", event="http.request", method="POST", path="/api/orders/"),
    _record(
        1,
        "payment.fast_fail",
        logger="orders.services",
        event="payment.fast_fail",
        duration_ms=1.12,
    ),
    {
        **_record(2, "http.response", level="ERROR", logger="retail.http"),
        "event": "http.response",
        "method": "POST",
        "path": "/api/orders/",
        "route": "api/orders/",
        "status_code": 503,
        "duration_ms": 1.671,
    },
]


def test_trace_on_a_wide_terminal_is_one_table_row_per_record(tmp_path):
    """COLUMNS=200: the table, every field whole on its row."""
    _log(tmp_path / "application.log", *TRACE_LINES)
    result = runner.invoke(
        app, ["trace", "rid-1", "--log-dir", str(tmp_path)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    expected = PROJECT_ROOT / "tests" / "fixtures" / "trace_200_columns.txt"
    assert result.stdout == expected.read_text(encoding="utf-8")


def test_trace_on_an_80_column_terminal_is_one_block_per_record(tmp_path):
    """COLUMNS=80: a table would cut `status_code=5…`; one block per record cuts nothing.

    The gateway's own log family is read too, its lines interleaved by time (SPEC §3.5).
    """
    _log(tmp_path / "application.log", *TRACE_LINES)
    gateway = {
        **_record(1, "gateway.charge", event="gateway.charge", outcome="unavailable"),
        "timestamp": "2026-11-28T10:00:01.500+00:00",
        "service": "gateway",
        "logger": "payments.fake_gateway",
        "level": "WARNING",
    }
    _log(tmp_path / "gateway.log", gateway)
    result = runner.invoke(
        app, ["trace", "rid-1", "--log-dir", str(tmp_path)], env={"COLUMNS": "80"}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Request rid-1: 4 record(s) in 2 file(s)\n"
        "\n"
        "2026-11-28 10:00:01.000  +0.0 ms  backend  INFO  retail.request\n"
        "  http.request\n"
        "    method=POST\n"
        "    path=/api/orders/\n"
        "\n"
        "2026-11-28 10:00:01.000  +0.0 ms  backend  INFO  orders.services\n"
        "  payment.fast_fail\n"
        "    duration_ms=1.12\n"
        "\n"
        "2026-11-28 10:00:01.500  +500.0 ms  gateway  WARNING  payments.fake_gateway\n"
        "  gateway.charge\n"
        "    outcome=unavailable\n"
        "\n"
        "2026-11-28 10:00:02.000  +1,000.0 ms  backend  ERROR  retail.http\n"
        "  http.response\n"
        "    method=POST\n"
        "    path=/api/orders/\n"
        "    route=api/orders/\n"
        "    status_code=503\n"
        "    duration_ms=1.671\n"
    )


def test_a_value_longer_than_the_line_wraps_under_its_indent(tmp_path):
    """A path longer than the terminal goes on on the next line, whole."""
    path = "/api/" + "segment/" * 12
    _log(tmp_path / "application.log", _record(1, "http.request", event="http.request", path=path))
    result = runner.invoke(
        app, ["trace", "rid-1", "--log-dir", str(tmp_path)], env={"COLUMNS": "60"}
    )
    field = f"path={path}"
    assert result.stdout.splitlines()[-2:] == ["    " + field[:56], "    " + field[56:]]


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run retailctl with stdout on a pseudo-terminal; return what the terminal received."""
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "retailctl", *args],
        cwd=PROJECT_ROOT,
        stdout=terminal,
        stderr=subprocess.PIPE,
        env={**os.environ, "TERM": "xterm-256color", **env},
    )
    os.close(terminal)
    received = b""
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            received += chunk
        assert process.wait(timeout=30) == 0, process.stderr.read()
    finally:
        os.close(controller)
        process.stderr.close()
    return received.decode()


def test_tail_colours_the_level_on_a_terminal_unless_no_color(tmp_path):
    """On a terminal the level is coloured; with NO_COLOR, or through a pipe, it is plain."""
    _log(
        tmp_path / "application.log",
        _record(1, "fine"),
        _record(2, "careful", level="WARNING"),
        _record(3, "broken", level="ERROR"),
    )
    args = ["tail", "--log-dir", str(tmp_path)]
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"}
    coloured = _run_on_a_terminal(args, {**env, "NO_COLOR": ""})
    assert "\x1b[32mINFO\x1b[0m" in coloured
    assert "\x1b[33mWARNING\x1b[0m" in coloured
    assert "\x1b[1;31mERROR\x1b[0m" in coloured
    assert coloured.count("\x1b[") == 6  # the three levels, nothing else
    plain = _run_on_a_terminal(args, {"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "WARNING rid-1" not in plain and "WARNING retail" in plain
    piped = subprocess.run(
        [sys.executable, "-m", "retailctl", *args],
        cwd=PROJECT_ROOT,
        env={**env, "TERM": "xterm-256color"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "\x1b[" not in piped.stdout and len(piped.stdout.splitlines()) == 3


def test_tail_shows_the_newest_warnings_of_two_workers_by_time(tmp_path):
    """tail -n 2 --level WARNING: worker B's newest WARNING, appended before worker A's
    batch, is shown (it was missed when reading stopped at the last two in the file)."""
    _log(
        tmp_path / "application.log",
        _record(10, "B newest", level="WARNING", request_id="b"),
        _record(8, "A older", level="WARNING", request_id="a"),
        _record(9, "A newer", level="WARNING", request_id="a"),
    )
    result = invoke("tail", "-n", "2", "--level", "WARNING", "--log-dir", str(tmp_path))
    assert [line.split(" ", 4)[4] for line in result.stdout.splitlines()] == [
        "A newer",
        "B newest",
    ]


def test_errors_lists_groups_as_a_table_and_as_json(database_url, rows):
    """errors: one row per fingerprint, most frequent first; --json is the same groups."""
    at = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    boom = {"route": "api/x/", "status_code": 500, "error": "internal_error"}
    boom |= {"fingerprint": "f1", "exception": "KeyError at orders/services.py:order_place"}
    gone = {"route": "api/products/<int:product_id>/", "status_code": 404, "fingerprint": "f2"}
    rows.metrics(
        [
            ("error_rate", 1.0, {**boom, "request_id": f"b-{n}"}, at + timedelta(minutes=n))
            for n in range(3)
        ]
        + [("error_rate", 1.0, {**gone, "error": "not_found", "request_id": "g-1"}, at)]
    )
    now = ["--days", "3650"]
    document = json.loads(invoke("errors", "--json", *now, "--database-url", database_url).stdout)
    assert [(g["fingerprint"], g["count"], g["sample_request_id"]) for g in document["groups"]] == [
        ("f1", 3, "b-2"),
        ("f2", 1, "g-1"),
    ]
    assert document["groups"][0]["first_seen"].startswith("2026-11-28T10:00:00")
    assert document["groups"][0]["last_seen"].startswith("2026-11-28T10:02:00")
    table = invoke("errors", *now, "--database-url", database_url)
    assert table.exit_code == 0, table.output
    assert "KeyError at orders/services.py:order_place" in table.stdout and "b-2" in table.stdout
    assert table.stdout.rstrip().endswith("Read one: retailctl trace <sample request ID>")
