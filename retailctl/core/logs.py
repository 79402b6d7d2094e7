"""Read the backend's JSON log lines: find a request's records, the last N, follow the file.

Log files are `application.log` and its rotated `application.log.1`, `.2`, … (possibly
`.gz`). Lines are JSON objects (SPEC §3.2); anything else is skipped and counted.
"""

import mmap
import os
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from retailctl.core.errors import LogDirMissing, NothingFound, UsageError
from retailctl.core.paths import DEFAULT_LOG_DIR

LOG_NAME = "application.log"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50}
_ROTATED = re.compile(re.escape(LOG_NAME) + r"\.(\d+)(\.gz)?\Z")
_CHUNK = 8 * 1024 * 1024
_WINDOW = 64 * 1024 * 1024
_EARLIEST = datetime.min.replace(tzinfo=UTC)
# C0 and C1 controls: a logged message may carry terminal escapes that JSON decoding restores.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_text(value: Any) -> str:
    """Return a log field as plain one-line text with every control character removed."""
    return _CONTROL.sub("", value if isinstance(value, str) else str(value))


def log_dir_resolve(log_dir: str | os.PathLike | None = None) -> Path:
    """Return the log directory (--log-dir, RETAIL_LOG_DIR, <project>/logs); it must exist."""
    raw = log_dir or os.environ.get("RETAIL_LOG_DIR", "").strip() or DEFAULT_LOG_DIR
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        raise LogDirMissing(f"log directory not found: {path}")
    return path


def log_files(log_dir: Path) -> list[Path]:
    """Return application.log* oldest rotation first, the live file last."""
    rotated = []
    for entry in log_dir.iterdir():
        found = _ROTATED.match(entry.name)
        if found and entry.is_file():
            rotated.append((int(found.group(1)), entry))
    files = [path for _, path in sorted(rotated, key=lambda item: -item[0])]
    live = log_dir / LOG_NAME
    if live.is_file():
        files.append(live)
    return files


def request_id_validate(request_id: str) -> str:
    """Return the ID if it matches SPEC's pattern, else raise UsageError."""
    if not REQUEST_ID_PATTERN.match(request_id):
        raise UsageError("invalid request ID: expected 1-128 characters of A-Z a-z 0-9 . _ : -")
    return request_id


@dataclass(frozen=True)
class LogRecord:
    """One parsed log line and where it came from."""

    data: dict[str, Any]
    file: str
    offset: int
    raw: bytes = b""  # the line as written, for --json output

    @property
    def timestamp(self) -> datetime | None:
        return parse_timestamp(self.data.get("timestamp"))

    @property
    def level(self) -> str:
        return clean_text(self.data.get("level") or "").upper()


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an ISO 8601 timestamp into an aware UTC datetime; None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


class TruncatedGzip(Exception):
    """A .gz file ended before its end-of-stream marker (or is corrupt)."""


def _chunks(path: Path, size: int = _CHUNK) -> Iterator[bytes]:
    """Yield a log file's bytes, decompressing .gz incrementally.

    Decompressing by hand (not gzip.open) hands out everything before the damage of a
    truncated or corrupt file, then raises TruncatedGzip.
    """
    with open(path, "rb") as stream:
        if path.suffix != ".gz":
            while chunk := stream.read(size):
                yield chunk
            return
        inflater = zlib.decompressobj(wbits=31)
        while compressed := stream.read(1024 * 1024):
            while compressed:
                try:
                    data = inflater.decompress(compressed)
                except zlib.error as exc:
                    raise TruncatedGzip(f"corrupt: {exc}") from None
                if data:
                    yield data
                compressed = b""
                if inflater.eof and inflater.unused_data:
                    # Concatenated gzip members are one valid file.
                    compressed = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
        if not inflater.eof:
            raise TruncatedGzip("ended before the end-of-stream marker")


@dataclass
class TraceResult:
    """The records of one request, oldest first, and what had to be skipped."""

    records: list[LogRecord] = field(default_factory=list)
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)
    files_searched: int = 0
    bytes_searched: int = 0


def _scan_for(
    chunks: Iterator[bytes], needle: bytes, on_line: Callable[[bytes, int], None], advance
) -> None:
    """Call on_line for every whole line holding `needle`; parse nothing else."""
    carry = b""
    base = 0  # offset of carry[0] in the (decompressed) file
    for chunk in chunks:
        advance(len(chunk))
        buf = carry + chunk
        end = buf.rfind(b"\n") + 1
        pos = 0
        while True:
            hit = buf.find(needle, pos, end)
            if hit < 0:
                break
            start = buf.rfind(b"\n", 0, hit) + 1
            stop = buf.find(b"\n", hit, end)
            on_line(buf[start:stop], base + start)
            pos = stop + 1
        carry = buf[end:]
        base += end
    if needle in carry:
        on_line(carry, base)


def _scan_mapped(path: Path, needle: bytes, on_line: Callable[[bytes, int], None], advance) -> None:
    """Like _scan_for over a memory-mapped plain file: no copies, the OS pages it in."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            pos = 0
            # Searched window by window (overlapping by the needle) to report progress.
            for window_start in range(0, size, _WINDOW):
                window_end = min(size, window_start + _WINDOW + len(needle) - 1)
                pos = max(pos, window_start)
                while True:
                    hit = mapped.find(needle, pos, window_end)
                    if hit < 0:
                        break
                    start = mapped.rfind(b"\n", 0, hit) + 1
                    stop = mapped.find(b"\n", hit)
                    stop = size if stop < 0 else stop
                    on_line(mapped[start:stop], start)
                    pos = stop + 1
                advance(min(_WINDOW, size - window_start))


def trace_search(
    log_dir: Path,
    request_id: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> TraceResult:
    """Return every record whose request_id is `request_id`, ordered by timestamp.

    The raw bytes are searched for the ID and only lines holding it are decoded.
    Rotation under several workers can leave `.1` older than `.2` in places, so the
    order is by timestamp, then file and offset (stable), never by file number.
    """
    request_id_validate(request_id)
    result = TraceResult()
    files = log_files(log_dir)
    total = sum(path.stat().st_size for path in files)
    done = 0
    needle = request_id.encode()
    found: list[tuple[datetime, int, int, LogRecord]] = []

    def advance(size: int) -> None:
        nonlocal done
        done += size
        if progress is not None:
            progress(min(done, total), total)

    for index, path in enumerate(files):

        def on_line(line: bytes, offset: int, index=index, path=path) -> None:
            data = _parse(line)
            if data is None:
                result.skipped_lines += 1
                return
            if data.get("request_id") == request_id:
                record = LogRecord(data=data, file=path.name, offset=offset, raw=line)
                found.append((record.timestamp or _EARLIEST, index, offset, record))

        try:
            if path.suffix == ".gz":
                _scan_for(_chunks(path), needle, on_line, advance)
            else:
                _scan_mapped(path, needle, on_line, advance)
        except TruncatedGzip as exc:
            result.warnings.append(f"{path.name} is truncated or corrupt ({exc}); read what it has")
        except OSError as exc:
            result.warnings.append(f"{path.name} could not be read: {exc.strerror or exc}")
        result.files_searched += 1
        result.bytes_searched += path.stat().st_size if path.exists() else 0
    found.sort(key=lambda item: item[:3])
    result.records = [item[3] for item in found]
    return result


def trace_require(log_dir: Path, request_id: str, **kwargs) -> TraceResult:
    """Like trace_search, but raise NothingFound when no record matches."""
    result = trace_search(log_dir, request_id, **kwargs)
    if not result.records:
        raise NothingFound(f"no log record with request ID {request_id} in {log_dir}")
    return result


def _lines_reversed(path: Path, block: int = 256 * 1024) -> Iterator[tuple[bytes, int]]:
    """Yield (line, offset) from the end of a plain file backwards."""
    with open(path, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        position = stream.tell()
        tail = b""
        while position > 0:
            step = min(block, position)
            position -= step
            stream.seek(position)
            buf = stream.read(step) + tail
            lines = buf.split(b"\n")
            tail = lines[0]
            offset = position + len(buf)
            for line in reversed(lines[1:]):
                offset -= len(line) + 1
                if line:
                    yield line, offset + 1
        if tail:
            yield tail, 0


def _lines_forward(path: Path) -> Iterator[tuple[bytes, int]]:
    offset = 0
    pending = b""
    for chunk in _chunks(path):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line, offset
            offset += len(line) + 1
    if pending:
        yield pending, offset


def record_matches(record: dict[str, Any], *, min_level: int, request_id: str | None) -> bool:
    """Return True when a record passes the --level and --request-id filters."""
    if request_id is not None and record.get("request_id") != request_id:
        return False
    if min_level:
        return LEVELS.get(str(record.get("level", "")).upper(), 0) >= min_level
    return True


def level_threshold(level: str | None) -> int:
    """Return the numeric threshold of --level (0 when unset); UsageError when unknown."""
    if level is None:
        return 0
    try:
        return LEVELS[level.upper()]
    except KeyError:
        raise UsageError(
            f"unknown level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        ) from None


@dataclass
class TailResult:
    """The last records and the number of unreadable lines met on the way."""

    records: list[LogRecord]
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)


def tail_records(
    log_dir: Path, *, count: int = 20, level: str | None = None, request_id: str | None = None
) -> TailResult:
    """Return the last `count` records passing the filters, oldest first."""
    if count < 0:
        raise UsageError("-n must be >= 0")
    if request_id is not None:
        request_id_validate(request_id)
    threshold = level_threshold(level)
    result = TailResult(records=[])
    picked: list[tuple[datetime, int, int, LogRecord]] = []
    files = log_files(log_dir)
    for index in range(len(files) - 1, -1, -1):
        if len(picked) >= count:
            break
        path = files[index]
        lines = _lines_forward(path) if path.suffix == ".gz" else _lines_reversed(path)
        from_file = []
        try:
            for line, offset in lines:
                data = _parse(line)
                if data is None:
                    result.skipped_lines += 1
                    continue
                if record_matches(data, min_level=threshold, request_id=request_id):
                    from_file.append(LogRecord(data=data, file=path.name, offset=offset, raw=line))
                    if path.suffix != ".gz" and len(picked) + len(from_file) >= count:
                        break
        except TruncatedGzip as exc:
            result.warnings.append(f"{path.name} is truncated or corrupt ({exc}); read what it has")
        for record in from_file:
            picked.append((record.timestamp or _EARLIEST, index, record.offset, record))
    picked.sort(key=lambda item: item[:3])
    result.records = [item[3] for item in picked[-count:]] if count else []
    return result


def follow(
    log_dir: Path,
    *,
    level: str | None = None,
    request_id: str | None = None,
    poll_seconds: float = 0.25,
    should_stop: Callable[[], bool] = lambda: False,
    from_start: bool = False,
) -> Iterator[LogRecord]:
    """Yield new records of application.log as they are written, following by name.

    Like `tail -F`: when the file is rotated (a new inode at the name) the rest of the
    old file is read, then the new one from its start; when it is truncated, reading
    starts over. Yields until `should_stop()` is true.
    """
    threshold = level_threshold(level)
    path = log_dir / LOG_NAME
    stream: BinaryIO | None = None
    inode = None
    pending = b""
    offset = 0
    try:
        while not should_stop():
            if stream is None:
                try:
                    stream = open(path, "rb")  # noqa: SIM115
                except FileNotFoundError:
                    time.sleep(poll_seconds)
                    continue
                inode = os.fstat(stream.fileno()).st_ino
                if not from_start:
                    stream.seek(0, os.SEEK_END)
                from_start = True  # every later (re)open reads the new file whole
                offset, pending = stream.tell(), b""
            chunk = stream.read(_CHUNK)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    start = offset
                    offset += len(line) + 1
                    data = _parse(line) if line else None
                    if data is not None and record_matches(
                        data, min_level=threshold, request_id=request_id
                    ):
                        yield LogRecord(data=data, file=LOG_NAME, offset=start, raw=line)
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != inode:
                stream.close()
                stream = None  # rotated: the old file is drained, open the new one
            elif current.st_size < offset + len(pending):
                stream.seek(0)  # truncated in place: start over
                offset, pending = 0, b""
            else:
                time.sleep(poll_seconds)
    finally:
        if stream is not None:
            stream.close()
