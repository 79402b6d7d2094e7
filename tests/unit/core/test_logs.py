"""The log reader: trace across rotated and gzipped files, tail, follow across rotation."""

import gzip
import json
import os
import threading
import time
from pathlib import Path

import pytest

from retailctl.core.errors import LogDirMissing, NothingFound, UsageError
from retailctl.core.logs import (
    clean_text,
    follow,
    log_dir_resolve,
    tail_records,
    trace_require,
    trace_search,
)

RID = "req-1234"


def _line(second: float, message: str, request_id=RID, level="INFO", **extra) -> str:
    record = {
        "timestamp": f"2026-11-28T10:00:{second:06.3f}+00:00",
        "level": level,
        "logger": "retail.test",
        "message": message,
        "request_id": request_id,
        **extra,
    }
    return json.dumps(record) + "\n"


def _write(path: Path, lines: list[str], gz: bool = False) -> None:
    data = "".join(lines).encode()
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


@pytest.fixture
def log_dir(tmp_path) -> Path:
    # Rotation under several workers: .1 holds an older record than .2 does.
    _write(
        tmp_path / "application.log.3.gz",
        [_line(1, "first"), _line(1.5, "other", "req-9")],
        gz=True,
    )
    _write(tmp_path / "application.log.2", [_line(4, "fourth"), "not json at all " + RID + "\n"])
    _write(tmp_path / "application.log.1", [_line(2, "second"), _line(3, "third", f"{RID}-longer")])
    _write(
        tmp_path / "application.log", [_line(5, "fifth", event="http.response", status_code=201)]
    )
    return tmp_path


def test_trace_orders_by_timestamp_not_file_number(log_dir):
    """Records come oldest first across .gz, rotated and live files; other IDs are left out."""
    result = trace_search(log_dir, RID)
    assert [r.data["message"] for r in result.records] == ["first", "second", "fourth", "fifth"]
    assert result.skipped_lines == 1
    assert result.files_searched == 4


def test_trace_equal_timestamps_keep_file_and_line_order(tmp_path):
    """Records with one timestamp keep rotation order, then line order."""
    _write(tmp_path / "application.log.1", [_line(1, "a"), _line(1, "b")])
    _write(tmp_path / "application.log", [_line(1, "c")])
    assert [r.data["message"] for r in trace_search(tmp_path, RID).records] == ["a", "b", "c"]


def test_truncated_gzip_yields_what_it_has_and_a_warning(tmp_path):
    """A truncated .gz is read up to the damage, with a warning, never a crash."""
    full = gzip.compress("".join(_line(i, f"m{i}") for i in range(200)).encode())
    (tmp_path / "application.log.1.gz").write_bytes(full[: len(full) // 2])
    result = trace_search(tmp_path, RID)
    assert result.warnings and "truncated" in result.warnings[0]
    assert 0 < len(result.records) < 200


def test_trace_rejects_bad_ids_and_reports_nothing_found(log_dir):
    """A malformed ID is a usage error; an unknown one is 'nothing found'."""
    with pytest.raises(UsageError):
        trace_search(log_dir, "bad id; rm -rf")
    with pytest.raises(NothingFound):
        trace_require(log_dir, "never-seen")


def test_hostile_text_is_stripped_of_control_characters():
    """Terminal escapes restored by JSON decoding are removed."""
    assert clean_text("ok\x1b[31mred\x07\x9b2J[bold]") == "ok[31mred2J[bold]"


def test_missing_log_dir(tmp_path):
    """A missing log directory is its own error (exit 3)."""
    with pytest.raises(LogDirMissing):
        log_dir_resolve(tmp_path / "nope")


def test_tail_filters_by_level_and_request_id(tmp_path):
    """tail returns the last N records at or above the level, oldest first."""
    lines = [_line(i, f"m{i}", level="ERROR" if i % 3 == 0 else "INFO") for i in range(30)]
    _write(tmp_path / "application.log.1", lines[:15])
    _write(tmp_path / "application.log", lines[15:] + ["{broken\n"])
    last = tail_records(tmp_path, count=4)
    assert [r.data["message"] for r in last.records] == ["m26", "m27", "m28", "m29"]
    errors = tail_records(tmp_path, count=3, level="error")
    assert [r.data["message"] for r in errors.records] == ["m21", "m24", "m27"]
    assert [r.data["message"] for r in tail_records(tmp_path, count=100, level="ERROR").records][
        :2
    ] == ["m0", "m3"]
    assert tail_records(tmp_path, count=5, request_id="req-9").records == []
    with pytest.raises(UsageError):
        tail_records(tmp_path, level="LOUD")


def test_follow_reopens_after_rotation_and_truncation(tmp_path):
    """-f follows the name: lines after a rename-rotation and after truncation both arrive."""
    live = tmp_path / "application.log"
    live.write_text(_line(0, "old"))
    seen: list[str] = []
    deadline = time.monotonic() + 10

    def stop() -> bool:
        return len(seen) >= 4 or time.monotonic() > deadline

    def writer() -> None:
        def wait_for(count):
            while len(seen) < count and time.monotonic() < deadline:
                time.sleep(0.02)

        time.sleep(0.2)
        with open(live, "a") as stream:
            stream.write(_line(1, "before rotation"))
        wait_for(1)
        os.rename(live, tmp_path / "application.log.1")
        live.write_text(_line(2, "after rotation"))
        wait_for(2)
        with open(live, "a") as stream:
            stream.write(_line(3, "appended"))
        wait_for(3)
        live.write_text(_line(4, "after truncation"))

    thread = threading.Thread(target=writer)
    thread.start()
    for record in follow(tmp_path, poll_seconds=0.02, should_stop=stop):
        seen.append(record.data["message"])
    thread.join(timeout=5)
    assert seen == ["before rotation", "after rotation", "appended", "after truncation"]
