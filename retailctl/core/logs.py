"""Read the JSON log lines: find a request's records, the last N, follow the file.

A log family is `<name>.log` and its rotated `<name>.log.1`, `.2`, … (possibly `.gz`): the
backend writes `application.log`, the fake payment gateway `gateway.log` (SPEC §3.5).
`trace` reads every family in the directory, interleaved by time; `tail` reads
application.log. Lines are JSON objects (SPEC §3.2); anything else is skipped and counted.
How files are read as lines, in bounded memory, is retailctl.core.lines.
"""

import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from retailctl.core.errors import LogDirMissing, LogUnreadable, NothingFound, UsageError
from retailctl.core.lines import (
    CHUNK_BYTES,
    MAX_LINE_BYTES,
    LineSplitter,
    TruncatedGzip,
    file_chunks,
    lines_backward,
    lines_forward,
    search_chunks,
    search_mapped,
)
from retailctl.core.paths import DEFAULT_LOG_DIR

LOG_NAME = "application.log"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")
LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50}
# A log family's live file or one of its rotations: name.log, name.log.3, name.log.3.gz.
_LOG_FILE = re.compile(r"(?P<family>[^/]+\.log)(?:\.(?P<rotation>\d+)(?:\.gz)?)?\Z")
# The service a family's lines come from, for lines older than their `service` key.
_FAMILY_SERVICES = {"application.log": "backend", "gateway.log": "gateway"}
_EARLIEST = datetime.min.replace(tzinfo=UTC)
# Every character of Unicode's categories Cc (C0 and C1 controls: terminal escapes that
# JSON decoding restores), Cf (format controls: U+202E and the other bidi overrides, which
# reorder what a terminal shows; zero-width characters) and Zl/Zp (line breaks), as of
# Unicode 14 (a test checks it against the running Python's unicodedata).
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"
    "\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]"
)


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


def log_families(log_dir: Path) -> dict[str, list[Path]]:
    """Return every log family of the directory: its files, oldest rotation first, live last.

    application.log comes first, then the others by name.
    """
    try:
        entries = list(log_dir.iterdir())
    except OSError as exc:
        raise LogUnreadable(f"log directory not readable: {log_dir} ({_reason(exc)})") from None
    found: dict[str, list[tuple[int, Path]]] = {}
    for entry in entries:
        match = _LOG_FILE.match(entry.name)
        if match and entry.is_file():
            # Oldest first: the highest rotation number first, the live file last.
            rotation = match.group("rotation")
            age = int(rotation) if rotation is not None else -1
            found.setdefault(match.group("family"), []).append((age, entry))
    order = sorted(found, key=lambda family: (family != LOG_NAME, family))
    return {family: [path for _, path in sorted(found[family], reverse=True)] for family in order}


def log_files(log_dir: Path, family: str = LOG_NAME) -> list[Path]:
    """Return one family's files (application.log* by default), oldest rotation first."""
    return log_families(log_dir).get(family, [])


def trace_log_files(log_dir: Path) -> list[Path]:
    """Return the files of every log family, each family oldest rotation first."""
    return [path for files in log_families(log_dir).values() for path in files]


def service_of(record: "LogRecord") -> str:
    """Return the service that wrote a record: its `service` key, else its log family's."""
    service = record.data.get("service")
    if isinstance(service, str) and service:
        return clean_text(service)
    family = _LOG_FILE.match(record.file)
    name = family.group("family") if family else record.file
    return _FAMILY_SERVICES.get(name, name.removesuffix(".log"))


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def file_size(path: Path) -> int:
    """Return a log file's size; 0 when it went away (rotated out) or cannot be seen."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


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
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        # OverflowError: a valid time whose UTC value falls outside years 1-9999
        # (9999-12-31T23:59:59-05:00).
        return None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


@dataclass
class TraceResult:
    """The records of one request, oldest first, and what had to be skipped."""

    records: list[LogRecord] = field(default_factory=list)
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)
    files_searched: int = 0
    bytes_searched: int = 0


def trace_search(
    log_dir: Path,
    request_id: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> TraceResult:
    """Return every record whose request_id is `request_id`, in every log family, by time.

    The raw bytes are searched for the ID and only lines holding it are decoded.
    Rotation under several workers can leave `.1` older than `.2` in places, and the
    services' lines interleave, so the order is by timestamp, then file and offset
    (stable), never by file number.
    """
    request_id_validate(request_id)
    result = TraceResult()
    files = trace_log_files(log_dir)
    total = sum(map(file_size, files))
    oversized = 0
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

        def on_oversized() -> None:
            nonlocal oversized
            oversized += 1

        try:
            if path.suffix == ".gz":
                search_chunks(file_chunks(path), needle, on_line, advance, on_oversized)
            else:
                search_mapped(path, needle, on_line, advance, on_oversized)
        except TruncatedGzip as exc:
            result.warnings.append(f"{path.name} is truncated or corrupt ({exc}); read what it has")
        except OSError as exc:
            result.warnings.append(f"{path.name} could not be read ({_reason(exc)}); skipped")
        result.files_searched += 1
        result.bytes_searched += file_size(path)
    if oversized:
        result.warnings.append(
            f"skipped {oversized} line(s) holding the ID longer than {MAX_LINE_BYTES // 2**20} MiB"
        )
    found.sort(key=lambda item: item[:3])
    result.records = [item[3] for item in found]
    return result


def trace_require(log_dir: Path, request_id: str, **kwargs) -> TraceResult:
    """Like trace_search, but raise NothingFound when no record matches."""
    result = trace_search(log_dir, request_id, **kwargs)
    if not result.records:
        raise NothingFound(f"no log record with request ID {request_id} in {log_dir}")
    return result


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
    """The last records and what could not be read on the way."""

    records: list[LogRecord]
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)


# Workers buffer their lines and append them in batches, so a file is in time order only
# roughly: a line may follow lines written up to this long after it (the writer flushes
# every 0.2 s; the margin covers a writer that lags under load).
REORDER_SECONDS = 5.0
# ...and, for lines without a readable timestamp, at most this many lines further back.
_REORDER_LINES = 10_000


def tail_records(
    log_dir: Path, *, count: int = 20, level: str | None = None, request_id: str | None = None
) -> TailResult:
    """Return the newest `count` records passing the filters, oldest first, by timestamp.

    Files are read from the end backwards. Once `count` records are found, reading goes
    on over the lines written up to REORDER_SECONDS before the oldest of them, since a
    newer record of another worker may sit there; then all found are ordered by time.
    """
    if count < 0:
        raise UsageError("-n must be >= 0")
    if request_id is not None:
        request_id_validate(request_id)
    threshold = level_threshold(level)
    result = TailResult(records=[])
    if count == 0:
        return result
    picked: list[tuple[datetime, int, int, LogRecord]] = []
    horizon: datetime | None = None  # once `count` are found: how far back to read
    lines_left = _REORDER_LINES
    done = False
    files = log_files(log_dir)
    for index in range(len(files) - 1, -1, -1):
        path = files[index]
        gzipped = path.suffix == ".gz"  # read forward, whole: it cannot stop early
        oversized = 0
        try:
            for line, offset in lines_forward(path) if gzipped else lines_backward(path):
                if line is None:
                    oversized += 1
                    continue
                data = _parse(line)
                if data is None:
                    result.skipped_lines += 1
                    continue
                stamp = parse_timestamp(data.get("timestamp"))
                if horizon is not None:
                    lines_left -= 1
                    if (stamp is not None and stamp < horizon) or lines_left < 0:
                        done = True
                        if not gzipped:
                            break
                if record_matches(data, min_level=threshold, request_id=request_id):
                    record = LogRecord(data=data, file=path.name, offset=offset, raw=line)
                    picked.append((stamp or _EARLIEST, index, offset, record))
                    if horizon is None and len(picked) >= count:
                        horizon = _before(min(item[0] for item in picked), REORDER_SECONDS)
        except TruncatedGzip as exc:
            result.warnings.append(f"{path.name} is truncated or corrupt ({exc}); read what it has")
        except OSError as exc:
            result.warnings.append(f"{path.name} could not be read ({_reason(exc)}); skipped")
        if oversized:
            result.warnings.append(
                f"{path.name}: skipped {oversized} line(s) longer than "
                f"{MAX_LINE_BYTES // 2**20} MiB"
            )
        if done:
            break
    picked.sort(key=lambda item: item[:3])
    result.records = [item[3] for item in picked[-count:]]
    return result


def _before(moment: datetime, seconds: float) -> datetime:
    try:
        return moment - timedelta(seconds=seconds)
    except OverflowError:
        return _EARLIEST


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
    starts over. Yields until `should_stop()` is true. A name that cannot be opened (a
    directory, no permission) raises LogUnreadable: following it would print nothing.
    """
    threshold = level_threshold(level)
    path = log_dir / LOG_NAME
    stream: BinaryIO | None = None
    inode = None
    lines = LineSplitter()
    try:
        while not should_stop():
            if stream is None:
                try:
                    stream = open(path, "rb")  # noqa: SIM115
                except FileNotFoundError:
                    time.sleep(poll_seconds)
                    continue
                except OSError as exc:
                    raise LogUnreadable(f"cannot follow {path}: {_reason(exc)}") from None
                inode = os.fstat(stream.fileno()).st_ino
                if not from_start:
                    stream.seek(0, os.SEEK_END)
                from_start = True  # every later (re)open reads the new file whole
                lines = LineSplitter(stream.tell())
            try:
                chunk = stream.read(CHUNK_BYTES)
            except OSError as exc:
                raise LogUnreadable(f"cannot follow {path}: {_reason(exc)}") from None
            if chunk:
                for line, start in lines.feed(chunk):
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
            elif current.st_size < lines.offset + lines.pending:
                stream.seek(0)  # truncated in place: start over
                lines = LineSplitter()
            else:
                time.sleep(poll_seconds)
    finally:
        if stream is not None:
            stream.close()
