"""JSON log lines to stdout and the rotating `application.log` (SPEC §3.2).

The request path only appends an entry to a buffer. A writer thread takes the batch and,
in a server (`RETAIL_LOG_WRITER=process`), sends it to the process's writer process
(retail/writer_process.py), which formats each entry once with python-json-logger's
orjson formatter and writes the lines to the stdout and `application.log` it shares; the
formatting and the writes then take no GIL from the request threads. Until that child
answers, whenever it fails, with `RETAIL_LOG_WRITER=thread`, and in a short command that
never starts the child, the thread formats and writes the batch itself. Either way a
batch goes to stdout in whole-line chunks and to the file under concurrent-log-handler's
inter-process lock, taken once a batch instead of once a line.

Two ways into the buffer, for one line format, and each earns its place:

- `JsonLinesHandler.emit()`, the standard logging path, takes every record Django, DRF and
  third-party code write, and every record in any set-up but production's (pytest's
  capture, a second handler, a filter on a logger): logging's routing stays the truth.
- `log_fields()` (behind `log_event` and the middleware's two `http.*` records per
  request) hands the one production handler the record's time, level, logger and fields,
  without a LogRecord: no makeRecord(), no handle() or filter chain on the request
  thread, a few microseconds per record, which is a third of what observability adds to a
  request's own thread (docs/observability-cost.md). `JsonFormatter.format_fields()`
  turns those parts into the line format() makes of the equivalent record.

It is one module because its parts share one contract that must change together: the
buffer's entry formats (record, attribute dict, fields tuple), the formatter that turns
each into the same line, the fast path that decides which entry to queue, and the
writer that reports a log file it cannot write (once per outage, to stderr).
"""

import logging
import os
import stat
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from concurrent_log_handler import ConcurrentRotatingFileHandler
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from retail.background import BackgroundLoop
from retail.context import request_id_var, trace_id_var

# Lines of one batch go to stdout in chunks no larger than this, so that writes of
# several workers sharing one pipe never interleave inside a line (POSIX PIPE_BUF).
_PIPE_BUF = 4096
# A stdout that is a regular file takes chunks of up to this size: there one write()
# lands whole (the kernel holds the file's lock for it), a pipe's limit does not apply.
_FILE_CHUNK = 64 * 1024
# The rotated file is read into gzip in pieces of this size. concurrent-log-handler's own
# 8 KB pieces made a 50 MB rotation 6,000 zlib calls, each releasing the GIL and waiting up
# to the switch interval to get it back from a busy request thread: 39 s instead of 1.1 s
# beside one (docs/observability-cost.md).
_GZIP_READ_BYTES = 1024 * 1024
# How many times `capacity` records may wait while a write (a rotation) is under way
# before a caller waits for it; see JsonLinesHandler._write_if_idle.
_BACKLOG_FACTOR = 10
# How many lines a handler writes itself before it starts the writer process for its
# lines (when the metric rows have not started it already): a server does within a
# second, a short command (a migration, a cron job) does not.
_LINES_BEFORE_WRITER_PROCESS = 2000
# No JSON line shows a record's thread or process names, so every record skips looking
# them up (the logging HOWTO's "Optimization" section); `process` (the pid) stays on.
logging.logThreads = False
logging.logMultiprocessing = False

_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_handlers: "weakref.WeakSet[JsonLinesHandler]" = weakref.WeakSet()

_LogRecord = logging.LogRecord
_new_object = object.__new__
_getLevelName = logging.getLevelName
_level_names = logging._levelToName
_UNSEEN = object()
# What JsonLinesHandler buffers: a LogRecord, a plain LogRecord's attribute dict (see
# emit()), or the (created, levelno, logger name, fields) of a record log_fields() did
# not build.
_FieldsEntry = tuple[float, int, str, dict[str, Any]]
_BufferEntry = logging.LogRecord | dict[str, Any] | _FieldsEntry


def _chunks(lines: list[str], limit: int) -> Iterator[str]:
    """Join lines into newline-separated chunks of at most `limit` bytes (a longer line alone)."""
    chunk: list[str] = []
    size = 0
    for line in lines:
        length = (len(line) if line.isascii() else len(line.encode("utf-8"))) + 1
        if chunk and size + length > limit:
            yield "\n".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += length
    if chunk:
        yield "\n".join(chunk)


class _RotatingFile(ConcurrentRotatingFileHandler):
    """The file side of JsonLinesHandler, closed only between two of its writes.

    logging.shutdown() closes every handler ever created, this one included, while the
    owner's writer thread may be inside emit(); closing under the owner's write lock
    keeps that from tearing the inter-process lock out from under the write.
    """

    owner_lock: "threading.RLock"

    def close(self) -> None:
        with self.owner_lock:
            super().close()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802  (logging's name)
        # Called inside emit()'s `except`: re-raise, so the owner counts the lines lost and
        # reports the outage once, instead of logging printing a traceback per chunk.
        raise


def _stamp_request_context(fields: dict[str, Any]) -> None:
    """Add the current `request_id` (and `trace_id` when the client sent one) to `fields`."""
    if "request_id" not in fields:
        fields["request_id"] = request_id_var.get()
    if "trace_id" not in fields:
        trace_id = trace_id_var.get()
        if trace_id is not None:
            fields["trace_id"] = trace_id


class RequestIDFilter(logging.Filter):
    """Stamp `request_id` (and `trace_id` when the client sent one) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        _stamp_request_context(record.__dict__)
        return True


class SkipObservedRequestsFilter(logging.Filter):
    """Drop `django.request` records of requests the middleware already logged.

    The middleware writes one `http.response` record per request (with the traceback of
    an unhandled exception); Django's own "Not Found: /x" or "Internal Server Error"
    record for the same response would log it a second time.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not getattr(request, "retail_observed", False)


class JsonFormatter(OrjsonFormatter):
    """Render a record as one JSON object with SPEC's keys, extra fields at top level."""

    def __init__(self, **kwargs: Any) -> None:
        # `request` (Django passes the HttpRequest as extra) is no log field.
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request"])
        super().__init__(**kwargs)
        self._plain = "asctime" not in self._required_fields
        # Attribute names of a record, in order -> those that are log fields, or None when
        # all are (see _add_extra); records of one call site share a layout.
        self._layouts: dict[tuple[str, ...], tuple[str, ...] | None] = {}

    def format(self, record: logging.LogRecord) -> str:
        # The base class's format() for the common record (a str message without
        # arguments, exception or stack), in a third less time; the same JSON.
        msg = record.msg
        if (
            type(msg) is not str
            or record.args
            or record.exc_info
            or record.exc_text
            or record.stack_info
            or not self._plain
        ):
            return super().format(record)
        record.message = msg
        log_data: dict[str, Any] = {}
        self.add_fields(log_data, record, {})
        return self.serialize_log_record(self.process_log_record(log_data))

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        # SPEC's fixed keys first, then every extra field; the base class's generic
        # version (renames, defaults, static fields) costs a third more per record.
        log_data.update(self._head(record.created, record.levelname, record.name, record.message))
        self._add_extra(log_data, record.__dict__)
        if message_dict:
            log_data.update(message_dict)

    def format_fields(self, created: float, levelno: int, name: str, fields: dict[str, Any]) -> str:
        """Return the line format() makes of the record log_fields() would have built."""
        if not self._plain:
            return self.format(_record_of(created, levelno, name, fields))
        level = _level_names.get(levelno) or _getLevelName(levelno)
        log_data = self._head(created, level, name, fields["event"])
        self._add_extra(log_data, fields)
        return self.serialize_log_record(self.process_log_record(log_data))

    def _head(self, created: float, level: str, name: str, message: Any) -> dict[str, Any]:
        # `service` (SPEC §3.5): which program wrote the line, set in LOGGING.
        return {
            "timestamp": datetime.fromtimestamp(created, tz=UTC),
            "level": level,
            "logger": name,
            "message": message,
            **self.static_fields,
        }

    def _add_extra(self, log_data: dict[str, Any], fields: dict[str, Any]) -> None:
        """Add the keys of `fields` that are log fields: not reserved, not `_private`."""
        layout = tuple(fields)
        names = self._layouts.get(layout, _UNSEEN)
        if names is _UNSEEN:
            skip = self._skip_fields
            kept = tuple(key for key in layout if key not in skip and key[:1] != "_")
            # None: every key is a log field (log_fields()' records), one update() adds them.
            names = None if kept == layout else kept
            if len(self._layouts) >= 512:
                self._layouts.clear()
            self._layouts[layout] = names
        if names is None:
            log_data.update(fields)
        else:
            for key in names:
                log_data[key] = fields[key]


class JsonLinesHandler(logging.Handler):
    """Buffer records and write them, formatted once, to stdout and `application.log`.

    `flush()` writes the buffer now (logging calls it at exit, gunicorn's `worker_exit`
    hook calls it through `flush_logs()`); records of level ERROR and above wake the
    writer at once; a full buffer is written by the thread that fills it, so a burst
    slows its caller down instead of losing lines, except while a write (a rotation) is
    under way: then callers wait only once ten times as many records wait.

    log_fields() may hand it a record's fields instead of the record (emit_fields()),
    while its filters only stamp the request context and its formatter is a
    JsonFormatter (see _sole_fields_handler).
    """

    def __init__(
        self,
        filename: str,
        max_bytes: int = 50 * 1024 * 1024,
        backups: int = 10,
        stdout: bool = True,
        flush_interval: float = 0.2,
        capacity: int = 2000,
        synchronous: bool = False,
        writer_process: bool = False,
    ) -> None:
        super().__init__()
        self.filename = os.fspath(filename)
        self.max_bytes = max_bytes
        self.backups = backups
        self.stdout = stdout
        self.flush_interval = flush_interval
        self.capacity = capacity
        self.synchronous = synchronous
        self._file_chunk_bytes = 64 * 1024
        if max_bytes > 0:
            self._file_chunk_bytes = min(self._file_chunk_bytes, max(_PIPE_BUF, max_bytes // 4))
        self._records: deque[_BufferEntry] = deque()
        # Reentrant: closing the file handler takes it too (see _RotatingFile.close).
        self._write_lock = threading.RLock()
        self._writer = BackgroundLoop(
            name="retail-log-writer", tick=self.flush, interval=lambda: self.flush_interval
        )
        self._file: ConcurrentRotatingFileHandler | None = None
        # The stdout last written to, and the largest chunk it takes in one write.
        self._stdout_stream: Any = None
        self._stdout_chunk = _PIPE_BUF
        self._file_outage = _Outage()
        # Batches go to the server process's writer process (retail/writer_process.py)
        # once it answers; until then, and whenever it fails, this handler writes them.
        self.writer_process = writer_process
        self._lines_written_here = 0
        # Whether the last batch went through the child: finding it gone then is an outage.
        self._sending = False
        self._process_outage = False
        self._closing = False
        _handlers.add(self)

    def handle(self, record: logging.LogRecord) -> bool:
        # Handler.handle() would take the handler lock; a deque append needs none.
        if not self.filter(record):
            return False
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        # Merge the arguments now: the caller may change them before the writer runs.
        if record.args:
            try:
                record.msg = record.getMessage()
            except Exception:
                # A message that does not match its arguments, as logging reports it.
                self.handleError(record)
                return
            record.args = None
        # The buffer keeps a plain LogRecord's attribute dict, not the record: the dict of
        # a record whose values are all atomic is not tracked by the garbage collector, so
        # records waiting for the writer (hundreds at any time) add nothing to the work
        # of every collection, and do not make full collections come sooner by piling up
        # in the oldest generation. The writer puts each one back into a LogRecord.
        self._enqueue(record.__dict__ if type(record) is _LogRecord else record, record.levelno)

    def emit_fields(self, created: float, levelno: int, name: str, fields: dict[str, Any]) -> None:
        """Queue the record log_fields() would build, as its parts."""
        if levelno >= self.level:
            self._enqueue((created, levelno, name, fields), levelno)

    def _enqueue(self, entry: _BufferEntry, levelno: int) -> None:
        self._records.append(entry)
        if self.synchronous:
            self.flush()
            return
        if len(self._records) >= self.capacity:
            if self._write_if_idle():
                return
            # The writer writes the backlog as soon as the write under way ends.
            self._writer.wake()
        self._writer.ensure_running()
        if levelno >= logging.ERROR:
            self._writer.wake()

    def _write_if_idle(self) -> bool:
        """Write a full buffer in the caller's thread, unless a write is under way already.

        A write under way may be a rotation: concurrent-log-handler fsyncs and gzips the
        old file inside it (0.44 s of CPU to gzip 50 MB; request stalls of 0.26 and 0.80 s
        measured at two 20 MB rotations), and every thread that waited on it stalled.
        The records keep queueing behind it, and the writer writes them when it is done;
        only a buffer `_BACKLOG_FACTOR` times full (a writer that cannot keep up at all)
        makes the caller wait and write.
        """
        full = len(self._records) >= self.capacity * _BACKLOG_FACTOR
        if not self._write_lock.acquire(blocking=full):
            return False
        try:
            self._write_buffered()
        finally:
            self._write_lock.release()
        return True

    def flush(self) -> None:
        """Write every buffered record now."""
        with self._write_lock:
            self._write_buffered()

    def _write_buffered(self) -> None:
        # Called with the write lock held.
        records = self._records
        entries: list[_BufferEntry] = []
        while records:
            try:
                entries.append(records.popleft())
            except IndexError:
                break
        if not entries:
            return
        process = self._ready_writer_process(len(entries))
        if process is not None and self._sent_to(process, entries):
            return
        lines = self._formatted(entries)
        if lines:
            self._lines_written_here += len(lines)
            self._write(lines)

    def _formatted(self, entries: list[Any]) -> list[str]:
        """Format buffer entries (and lines already formatted) into lines, here."""
        format_fields = getattr(self.formatter, "format_fields", None)
        lines: list[str] = []
        for entry in entries:
            if type(entry) is str:
                lines.append(entry)
                continue
            try:
                if format_fields is not None and type(entry) is tuple:
                    lines.append(format_fields(*entry))
                else:
                    lines.append(self.format(_as_record(entry)))
            except Exception:
                self.handleError(_as_record(entry))
        return lines

    def _ready_writer_process(self, batch: int) -> Any:
        """The writer process to send a batch of `batch` entries to, if it is there and answers."""
        if not self.writer_process or self.synchronous or type(self.formatter) is not JsonFormatter:
            return None
        from retail.writer_process import LOGS, WriterProcessError, shared_writer_process

        process = shared_writer_process()
        if process.ready(LOGS):
            return process
        if self._sending:
            # The child that wrote the last batch is gone (killed, or discarded by the
            # metric client after a failure) before this batch reached it.
            self._sending = False
            self._writer_process_failed(WriterProcessError("the writer process exited"))
        written = self._lines_written_here + batch
        if written >= _LINES_BEFORE_WRITER_PROCESS and process.pid is None and not self._closing:
            # A process that keeps logging; a short command never pays for a child.
            try:
                process.start()
            except (OSError, WriterProcessError) as exc:
                self._writer_process_failed(exc)
        return None

    def _sent_to(self, process: Any, entries: list[_BufferEntry]) -> bool:
        """Have the writer process format and write `entries`; False if it did not."""
        from retail.writer_process import LOGS, OK, WriterProcessError

        process.attach(LOGS)
        sent = self._sendable(entries)
        try:
            reply = process.request(LOGS, self._encoded(sent))
        except WriterProcessError as exc:
            self._sending = False
            self._writer_process_failed(exc)
            self._write_unsent(sent)
            return True
        if reply != OK:
            self._sending = False
            self._writer_process_failed(RuntimeError(orjson.loads(reply).get("detail")))
            self._write_unsent(sent)
            return True
        self._sending = True
        if self._process_outage:
            self._process_outage = False
            _report(
                logging.INFO, "log.writer_process_answers", "the writer process answers again", 0
            )
        return True

    def _sendable(self, entries: list[_BufferEntry]) -> list[Any]:
        # log_fields()' parts go as they are, for the child to format; any other record
        # is formatted here (the child has no LogRecord of it).
        sent: list[Any] = []
        for entry in entries:
            if type(entry) is tuple:
                sent.append(entry)
                continue
            sent.extend(self._formatted([entry]))
        return sent

    def _encoded(self, sent: list[Any]) -> bytes:
        """JSON of the batch; the fields of an entry orjson cannot take are formatted here."""
        default = self.formatter.json_default
        try:
            return orjson.dumps(sent, default=default, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            pass
        parts = []
        for item in sent:
            try:
                parts.append(orjson.dumps(item, default=default, option=orjson.OPT_NON_STR_KEYS))
            except TypeError:
                parts.extend(orjson.dumps(line) for line in self._formatted([item]))
        return b"[" + b",".join(parts) + b"]"

    def _write_unsent(self, sent: list[Any]) -> None:
        lines = self._formatted(sent)
        if lines:
            self._lines_written_here += len(lines)
            self._write(lines)

    def _writer_process_failed(self, exc: BaseException) -> None:
        if not self._process_outage:
            self._process_outage = True
            _report(
                logging.WARNING,
                "log.writer_process_failed",
                f"the writer process did not write a batch ({exc}); this process writes "
                "its lines itself until it answers again",
                0,
            )

    def write_sent(self, sent: list[Any]) -> None:
        """Write a batch another process's handler sent: lines, or log_fields()' parts."""
        lines = [
            item if type(item) is str else self.formatter.format_fields(*item) for item in sent
        ]
        with self._write_lock:
            self._write(lines)

    def close(self) -> None:
        """Stop the writer thread, write what is left and close the file."""
        self._writer.stop(timeout=5)
        # The last batch goes to a writer process that answers, but starts none.
        self._closing = True
        self.flush()
        if self.writer_process:
            from retail.writer_process import LOGS, shared_writer_process

            shared_writer_process().detach(LOGS)
        with self._write_lock:
            self._file_outage.closing(self.filename)
            if self._file is not None:
                self._file.close()
                self._file = None
        super().close()

    def _write(self, lines: list[str]) -> None:
        file_chunks: list[str] | None = None
        if self.stdout:
            file_chunks = self._write_stdout(lines)
        # A few records per chunk: one lock, one size check and one write each, and
        # rotated files stay close to max_bytes.
        if file_chunks is None:
            file_chunks = list(_chunks(lines, self._file_chunk_bytes))
        written = 0
        try:
            file_handler = self._file_handler()
            for chunk in file_chunks:
                file_handler.emit(logging.makeLogRecord({"msg": chunk}))
                written += 1
        except Exception as exc:
            lost = sum(chunk.count("\n") + 1 for chunk in file_chunks[written:])
            self._file_outage.failed(self.filename, lost, exc)
        else:
            self._file_outage.recovered(self.filename)

    def _write_stdout(self, lines: list[str]) -> list[str] | None:
        """Write `lines` to stdout; return its chunks when the file takes the same ones."""
        stream = sys.stdout
        if stream is None:
            return None
        if stream is not self._stdout_stream:
            self._stdout_stream, self._stdout_chunk = stream, _stdout_chunk_bytes(stream)
        chunks = list(_chunks(lines, self._stdout_chunk))
        try:
            for chunk in chunks:
                stream.write(chunk + "\n")
                stream.flush()
        except (OSError, ValueError):
            # A closed or broken stdout (detached daemon, closed pipe) must not keep
            # the lines from the file.
            pass
        return chunks if self._stdout_chunk == self._file_chunk_bytes else None

    def _file_handler(self) -> ConcurrentRotatingFileHandler:
        # Created at the first write: configuring logging touches no file.
        if self._file is None:
            os.makedirs(os.path.dirname(self.filename) or ".", exist_ok=True)
            handler = _RotatingFile(
                self.filename,
                maxBytes=self.max_bytes,
                backupCount=self.backups,
                use_gzip=True,
                encoding="utf-8",
            )
            handler.owner_lock = self._write_lock
            handler.gzip_buffer = _GZIP_READ_BYTES
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._file = handler
        return self._file

    def _after_fork(self) -> None:
        # The writer thread does not survive fork(); the child starts its own, and the
        # parent's buffered records are the parent's to write.
        self._writer.reset()
        self._records.clear()
        self._file_outage = _Outage()
        self._lines_written_here = 0
        self._sending = False
        self._process_outage = False
        self._write_lock = threading.RLock()
        if self._file is not None:
            self._file.owner_lock = self._write_lock


class _Outage:
    """Report a log file that cannot be written: once when it starts, once when it ends.

    The reports go to stderr, as JSON lines of their own: the logging system is what
    failed. Lines lost (not written to the file; stdout still had them) are counted.
    """

    def __init__(self) -> None:
        self.lost = 0
        self.ongoing = False

    def failed(self, filename: str, lost: int, exc: Exception) -> None:
        self.lost += lost
        if not self.ongoing:
            self.ongoing = True
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            _report(
                logging.WARNING,
                "log.file_unwritable",
                f"cannot write {filename} ({reason}): {lost} line(s) lost; further "
                "lost lines are counted and reported when writing works again",
                lost,
            )

    def recovered(self, filename: str) -> None:
        if self.ongoing:
            self.ongoing = False
            lost, self.lost = self.lost, 0
            _report(
                logging.INFO,
                "log.file_writable",
                f"writing {filename} again: {lost} line(s) were lost",
                lost,
            )

    def closing(self, filename: str) -> None:
        if self.ongoing:
            _report(
                logging.WARNING,
                "log.file_unwritable",
                f"still cannot write {filename} at exit: {self.lost} line(s) lost",
                self.lost,
            )
            self.ongoing = False


def _report(level: int, event: str, message: str, lost: int) -> None:
    """Write one JSON line about the log file itself to stderr."""
    line = {
        "timestamp": datetime.now(UTC).isoformat(),
        "level": logging.getLevelName(level),
        "logger": __name__,
        "message": message,
        "request_id": None,
        "event": event,
        "lost_lines": lost,
    }
    try:
        sys.stderr.write(orjson.dumps(line).decode() + "\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        # No stderr left to tell (a detached daemon).
        pass


def _stdout_chunk_bytes(stream: Any) -> int:
    """Largest chunk of lines to write to `stream` at once: PIPE_BUF unless a regular file."""
    try:
        if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return _FILE_CHUNK
    except (AttributeError, OSError, ValueError):
        # No file descriptor (a test's capture), or a closed stream.
        pass
    return _PIPE_BUF


def _record_of(
    created: float, levelno: int, name: str, fields: dict[str, Any]
) -> logging.LogRecord:
    """Return the LogRecord log_fields() would have built, made at `created`."""
    record = _LogRecord(name, levelno, "", 0, fields["event"], None, None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    record.relativeCreated = (created - logging._startTime) * 1000
    record.__dict__.update(fields)
    return record


def _as_record(entry: _BufferEntry) -> logging.LogRecord:
    """Return the LogRecord behind a buffer entry."""
    if type(entry) is tuple:
        return _record_of(*entry)
    if type(entry) is dict:
        record = _new_object(_LogRecord)
        record.__dict__ = entry
        return record
    return entry


def _reset_after_fork() -> None:
    for handler in list(_handlers):
        handler._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


def handler_named(name: str) -> JsonLinesHandler | None:
    """Return the JsonLinesHandler LOGGING configured under `name`, if there is one."""
    for handler in list(_handlers):
        if handler.name == name:
            return handler
    return None


def flush_logs() -> None:
    """Write every buffered log record of this process now."""
    for handler in list(_handlers):
        handler.flush()


def set_synchronous_logging(enabled: bool) -> None:
    """Write log records in the calling thread as they come (tests read the file at once)."""
    for handler in list(_handlers):
        handler.synchronous = enabled
        if enabled:
            handler.flush()


_events = logging.getLogger("retail.events")


def log_event(
    event: str,
    *,
    level: int = logging.INFO,
    logger: logging.Logger | None = None,
    exc_info: Any = None,
    **fields: Any,
) -> None:
    """Log `event` with `fields` as top-level keys of the JSON line."""
    target = logger or _events
    if not target.isEnabledFor(level):
        return
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    for key in _RECORD_ATTRS.intersection(fields):
        # A field named like a LogRecord attribute (`name`, `module`…) would clobber it.
        fields[key + "_"] = fields.pop(key)
    log_fields(target, level, {"event": event, **fields}, exc_info)


def log_fields(
    logger: logging.Logger, level: int, fields: dict[str, Any], exc_info: Any = None
) -> None:
    """Log one record whose extra attributes are `fields` (its `event` first), if enabled.

    The fast path of log_event() for callers that know their fields: none named like a
    LogRecord attribute (see _RECORD_ATTRS), `exc_info` None or a sys.exc_info() tuple.
    `fields["event"]` is the record's message. `fields` becomes the record's: the caller
    hands over a dict it no longer changes.
    """
    if not logger.isEnabledFor(level):
        return
    handler = _sole_fields_handler(logger) if exc_info is None else None
    if handler is not None:
        _stamp_request_context(fields)
        handler.emit_fields(time.time(), level, logger.name, fields)
        return
    # makeRecord + handle instead of Logger.info: no stack walk to find the caller,
    # whose file and line no JSON line shows.
    record = logger.makeRecord(
        logger.name, level, "", 0, fields["event"], None, exc_info, extra=fields
    )
    logger.handle(record)


def _sole_fields_handler(logger: logging.Logger) -> JsonLinesHandler | None:
    """Return the one handler `logger`'s records reach, if it can take their fields.

    As Logger.handle() and callHandlers() would route a record: the logger's own filters,
    then every handler up the propagation chain. Any other handler (pytest's capture, a
    second output), a filter on the logger, a handler filter other than RequestIDFilter
    (whose work log_fields() does itself) or a formatter other than JsonFormatter means
    the record is built and handled the standard way.
    """
    if logger.disabled or logger.filters:
        return None
    found: JsonLinesHandler | None = None
    node: logging.Logger | None = logger
    while node is not None:
        for handler in node.handlers:
            if found is not None or type(handler) is not JsonLinesHandler:
                return None
            found = handler
        node = node.parent if node.propagate else None
    if found is None or not isinstance(found.formatter, JsonFormatter):
        return None
    for handler_filter in found.filters:
        if type(handler_filter) is not RequestIDFilter:
            return None
    return found


class StructuredLogger:
    """Write events of one logger: `StructuredLogger(__name__).info("order.placed", order_id=7)`."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def debug(self, event: str, **fields: Any) -> None:
        """Log a DEBUG event."""
        log_event(event, level=logging.DEBUG, logger=self.logger, **fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log an INFO event."""
        log_event(event, level=logging.INFO, logger=self.logger, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log a WARNING event."""
        log_event(event, level=logging.WARNING, logger=self.logger, **fields)

    def error(self, event: str, **fields: Any) -> None:
        """Log an ERROR event."""
        log_event(event, level=logging.ERROR, logger=self.logger, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log an ERROR event with the traceback of the exception being handled."""
        log_event(event, level=logging.ERROR, logger=self.logger, exc_info=True, **fields)
