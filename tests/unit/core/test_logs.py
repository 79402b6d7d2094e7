"""The log reader: trace across rotated and gzipped files, tail, follow across rotation."""

import gzip
import json
import os
import sys
import threading
import time
import tracemalloc
import unicodedata
from pathlib import Path

import pytest

from retailctl.core.errors import LogDirMissing, LogUnreadable, NothingFound, UsageError
from retailctl.core.lines import MAX_LINE_BYTES
from retailctl.core.logs import (
    REORDER_SECONDS,
    clean_text,
    follow,
    log_dir_resolve,
    parse_timestamp,
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


def test_bidi_and_every_other_format_control_is_stripped():
    """U+202E (which shows 'txt.exe' as 'exe.txt') and all of Cc, Cf, Zl, Zp are removed."""
    assert clean_text("invoice\u202etxt.exe\u2066x\u2069\u200b\u2028y") == "invoicetxt.exexy"
    hidden = [
        chr(code)
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Zl", "Zp")
    ]
    assert clean_text("".join(hidden)) == ""
    assert clean_text("café ✓ 注文 \U0001f600") == "café ✓ 注文 \U0001f600"


def test_a_timestamp_that_overflows_in_utc_is_no_timestamp():
    """9999-12-31T23:59:59-05:00 is valid ISO 8601 but past datetime.max in UTC: None."""
    assert parse_timestamp("9999-12-31T23:59:59-05:00") is None
    assert parse_timestamp("0001-01-01T00:00:00+05:00") is None
    assert parse_timestamp("2026-11-28T10:00:00-05:00").hour == 15


def test_trace_and_tail_read_a_record_whose_timestamp_overflows(tmp_path):
    """Such a record is read and sorted as undated, never a crash."""
    overflowing = json.loads(_line(0, "far future"))
    overflowing["timestamp"] = "9999-12-31T23:59:59-05:00"
    _write(tmp_path / "application.log", [json.dumps(overflowing) + "\n", _line(1, "normal")])
    assert [r.data["message"] for r in trace_search(tmp_path, RID).records] == [
        "far future",
        "normal",
    ]
    assert [r.data["message"] for r in tail_records(tmp_path, count=1).records] == ["normal"]


def test_missing_log_dir(tmp_path):
    """A missing log directory is its own error (exit 3)."""
    with pytest.raises(LogDirMissing):
        log_dir_resolve(tmp_path / "nope")


def test_following_a_directory_named_application_log_is_an_error(tmp_path):
    """-f on an application.log that is a directory raises LogUnreadable (exit 3), no hang."""
    (tmp_path / "application.log").mkdir()
    assert tail_records(tmp_path, count=5).records == []
    with pytest.raises(LogUnreadable, match="Is a directory"):
        next(follow(tmp_path, poll_seconds=0.01))


def _long_line_log(path: Path, size: int) -> None:
    """Write a record, then `size` bytes of one line without a newline, then nothing."""
    with open(path, "wb") as stream:
        stream.write(_line(1, "before").encode())
        block = b"x" * (1024 * 1024)
        for _ in range(size // len(block)):
            stream.write(block)


@pytest.mark.parametrize("gz", [False, True])
def test_tail_over_a_line_without_end_holds_a_bounded_part_of_it(tmp_path, gz):
    """A line far past MAX_LINE_BYTES is skipped and reported; memory stays near the limit.

    Reading it by concatenating each block to the rest of the line (the old reader) held
    the whole line, and copied it once per block: quadratic time, memory = line size.
    """
    size = 3 * MAX_LINE_BYTES
    path = tmp_path / "application.log"
    _long_line_log(path, size)
    if gz:
        path.rename(tmp_path / "application.log.1")
        (tmp_path / "application.log.1.gz").write_bytes(
            gzip.compress((tmp_path / "application.log.1").read_bytes(), compresslevel=1)
        )
        (tmp_path / "application.log.1").unlink()
    tracemalloc.start()
    try:
        result = tail_records(tmp_path, count=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r.data["message"] for r in result.records] == ["before"]
    assert any("skipped 1 line(s) longer than 16 MiB" in w for w in result.warnings)
    assert peak < MAX_LINE_BYTES + 24 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def test_tail_reads_a_long_line_below_the_limit_whole(tmp_path):
    """A multi-MB record is returned intact, its offset exact, from either direction."""
    big = _line(2, "big", blob="y" * (5 * 1024 * 1024))
    lines = [_line(1, "first"), big, _line(3, "last")]
    _write(tmp_path / "application.log", lines)
    result = tail_records(tmp_path, count=3)
    assert [r.data["message"] for r in result.records] == ["first", "big", "last"]
    assert [r.offset for r in result.records] == [0, len(lines[0]), len(lines[0]) + len(big)]
    assert len(result.records[1].data["blob"]) == 5 * 1024 * 1024


def test_trace_skips_an_oversized_line_holding_the_id_in_plain_and_gzip_files(tmp_path):
    """trace reports a line past MAX_LINE_BYTES holding the ID and finds the others."""
    huge = _line(3, "huge", blob="z" * (MAX_LINE_BYTES + 10))
    _write(tmp_path / "application.log.1.gz", [_line(1, "one"), huge, _line(2, "two")], gz=True)
    _write(tmp_path / "application.log", [huge, _line(4, "four")])
    result = trace_search(tmp_path, RID)
    assert [r.data["message"] for r in result.records] == ["one", "two", "four"]
    assert result.warnings == ["skipped 2 line(s) holding the ID longer than 16 MiB"]


def test_tail_orders_by_time_the_batches_two_workers_appended(tmp_path):
    """-n 2 --level WARNING shows the newest two by timestamp, not the last two in the file.

    Worker B appended its batch (holding the newest WARNING, 10 ms after A's) before
    worker A appended its own, which ends with older records.
    """
    worker_b = [_line(10.010, "B newest warning", level="WARNING"), _line(10.02, "B info")]
    worker_a = [
        _line(9.0, "A old warning", level="WARNING"),
        _line(10.0, "A warning", level="WARNING"),
        _line(10.005, "A info"),
    ]
    _write(tmp_path / "application.log", worker_b + worker_a)
    newest = tail_records(tmp_path, count=2, level="WARNING")
    assert [r.data["message"] for r in newest.records] == ["A warning", "B newest warning"]
    assert [r.data["message"] for r in tail_records(tmp_path, count=1).records] == ["B info"]


def test_tail_reads_back_no_further_than_the_reordering_margin(tmp_path):
    """Reading stops at the first line older than REORDER_SECONDS before the records found."""
    recent = [_line(20 + i, f"m{i}") for i in range(3)]
    _write(tmp_path / "application.log", ["{broken\n", _line(20 - REORDER_SECONDS - 1, "old")])
    with open(tmp_path / "application.log", "a") as stream:
        stream.write("".join(recent))
    result = tail_records(tmp_path, count=3)
    assert [r.data["message"] for r in result.records] == ["m0", "m1", "m2"]
    assert result.skipped_lines == 0  # the broken line before "old" was never read
    _write(tmp_path / "application.log", ["{broken\n", _line(20 - REORDER_SECONDS + 1, "old")])
    with open(tmp_path / "application.log", "a") as stream:
        stream.write("".join(recent))
    assert tail_records(tmp_path, count=3).skipped_lines == 1


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
