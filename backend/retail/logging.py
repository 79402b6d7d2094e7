"""JSON log lines to stdout and the rotating `application.log` (SPEC §3.2).

The request path only appends a record to a buffer: a writer thread formats each record
once with python-json-logger's orjson formatter and writes the batch to stdout and,
under concurrent-log-handler's inter-process lock, to `application.log`. That keeps
the per-request cost of two log records to a few microseconds, and a batch takes the
file lock once instead of once per line.
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
# No JSON line shows a record's thread or process names, so every record skips looking
# them up (the logging HOWTO's "Optimization" section); `process` (the pid) stays on.
logging.logThreads = False
logging.logMultiprocessing = False

_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_handlers: "weakref.WeakSet[JsonLinesHandler]" = weakref.WeakSet()

_LogRecord = logging.LogRecord
_new_object = object.__new__
_makeRecord = logging.Logger.makeRecord
_getLevelName = logging.getLevelName
# The attributes LogRecord.__init__ sets, in its order, on the Python versions whose
# __init__ _new_record() repeats; elsewhere records are made the standard way.
_RECORD_LAYOUT = (
    "name", "msg", "args", "levelname", "levelno", "pathname", "filename", "module",
    "exc_info", "exc_text", "stack_info", "lineno", "funcName", "created", "msecs",
    "relativeCreated", "thread", "threadName", "processName", "process",
)  # fmt: skip
_FAST_RECORDS = (
    sys.version_info[:2] == (3, 11)
    and tuple(_LogRecord("", logging.INFO, "", 0, "", None, None).__dict__) == _RECORD_LAYOUT
)
# The attributes _new_record() does not set: those of a record without a caller, thread
# and process names, traceback text or stack.
_RECORD_TEMPLATE: dict[str, Any] = dict.fromkeys(_RECORD_LAYOUT)
_RECORD_TEMPLATE.update(pathname="", filename="", module="", lineno=0)
# os.getpid() is a system call; the pid changes only at fork (see _reset_after_fork).
_pid = os.getpid()


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


class RequestIDFilter(logging.Filter):
    """Stamp `request_id` (and `trace_id` when the client sent one) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        if "request_id" not in fields:
            fields["request_id"] = request_id_var.get()
        if "trace_id" not in fields:
            trace_id = trace_id_var.get()
            if trace_id is not None:
                fields["trace_id"] = trace_id
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
        # Attribute names of a record, in order -> those that are log fields (see
        # _field_names); records of one call site share a layout.
        self._layouts: dict[tuple[str, ...], tuple[str, ...]] = {}

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
        log_data["timestamp"] = datetime.fromtimestamp(record.created, tz=UTC)
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        fields = record.__dict__
        for key in self._field_names(fields):
            log_data[key] = fields[key]
        if message_dict:
            log_data.update(message_dict)

    def _field_names(self, fields: dict[str, Any]) -> tuple[str, ...]:
        """Return the keys of `fields` that are log fields: not reserved, not `_private`."""
        layout = tuple(fields)
        names = self._layouts.get(layout)
        if names is None:
            skip = self._skip_fields
            names = tuple(key for key in layout if key not in skip and key[:1] != "_")
            if len(self._layouts) >= 512:
                self._layouts.clear()
            self._layouts[layout] = names
        return names


class JsonLinesHandler(logging.Handler):
    """Buffer records and write them, formatted once, to stdout and `application.log`.

    `flush()` writes the buffer now (logging calls it at exit, gunicorn's `worker_exit`
    hook calls it through `flush_logs()`); records of level ERROR and above wake the
    writer at once; a full buffer is written by the thread that fills it, so a burst
    slows its caller down instead of losing lines.
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
        # LogRecords, or for a plain LogRecord its attribute dict (see emit()).
        self._records: deque[logging.LogRecord | dict[str, Any]] = deque()
        # Reentrant: closing the file handler takes it too (see _RotatingFile.close).
        self._write_lock = threading.RLock()
        self._writer = BackgroundLoop(
            name="retail-log-writer", tick=self.flush, interval=lambda: self.flush_interval
        )
        self._file: ConcurrentRotatingFileHandler | None = None
        # The stdout last written to, and the largest chunk it takes in one write.
        self._stdout_stream: Any = None
        self._stdout_chunk = _PIPE_BUF
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
        self._records.append(record.__dict__ if type(record) is _LogRecord else record)
        if self.synchronous or len(self._records) >= self.capacity:
            self.flush()
            return
        self._writer.ensure_running()
        if record.levelno >= logging.ERROR:
            self._writer.wake()

    def flush(self) -> None:
        """Write every buffered record now."""
        with self._write_lock:
            records = self._records
            lines: list[str] = []
            while records:
                try:
                    record = records.popleft()
                except IndexError:
                    break
                if type(record) is dict:
                    fields, record = record, _new_object(_LogRecord)
                    record.__dict__ = fields
                try:
                    lines.append(self.format(record))
                except Exception:
                    self.handleError(record)
            if lines:
                self._write(lines)

    def close(self) -> None:
        """Stop the writer thread, write what is left and close the file."""
        self._writer.stop(timeout=5)
        self.flush()
        with self._write_lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        super().close()

    def _write(self, lines: list[str]) -> None:
        file_chunks: list[str] | None = None
        if self.stdout:
            file_chunks = self._write_stdout(lines)
        try:
            file_handler = self._file_handler()
            # A few records per chunk: one lock, one size check and one write each, and
            # rotated files stay close to max_bytes.
            if file_chunks is None:
                file_chunks = list(_chunks(lines, self._file_chunk_bytes))
            for chunk in file_chunks:
                file_handler.emit(logging.makeLogRecord({"msg": chunk}))
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": "writing a batch of log lines"}))

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
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._file = handler
        return self._file

    def _after_fork(self) -> None:
        # The writer thread does not survive fork(); the child starts its own, and the
        # parent's buffered records are the parent's to write.
        self._writer.reset()
        self._records.clear()
        self._write_lock = threading.RLock()
        if self._file is not None:
            self._file.owner_lock = self._write_lock


def _stdout_chunk_bytes(stream: Any) -> int:
    """Largest chunk of lines to write to `stream` at once: PIPE_BUF unless a regular file."""
    try:
        if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return _FILE_CHUNK
    except (AttributeError, OSError, ValueError):
        # No file descriptor (a test's capture), or a closed stream.
        pass
    return _PIPE_BUF


def _reset_after_fork() -> None:
    global _pid
    _pid = os.getpid()
    for handler in list(_handlers):
        handler._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


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
    `fields["event"]` is the record's message.
    """
    if not logger.isEnabledFor(level):
        return
    if (
        _FAST_RECORDS
        and type(logger).makeRecord is _makeRecord
        and logging.getLogRecordFactory() is _LogRecord
        and not (logging.logThreads or logging.logMultiprocessing)
    ):
        record = _new_record(logger.name, level, fields["event"], exc_info, fields)
    else:
        # makeRecord + handle instead of Logger.info: no stack walk to find the caller,
        # whose file and line no JSON line shows.
        record = logger.makeRecord(
            logger.name, level, "", 0, fields["event"], None, exc_info, extra=fields
        )
    logger.handle(record)


def _new_record(
    name: str, level: int, msg: str, exc_info: Any, extra: dict[str, Any]
) -> logging.LogRecord:
    """Return what `Logger.makeRecord(name, level, "", 0, msg, None, exc_info, extra=extra)`
    returns, from a copy of a template: a third of the time of LogRecord.__init__ and
    makeRecord's key-by-key copy of `extra`. Python 3.11's LogRecord.__init__, with thread
    and process names off (see _FAST_RECORDS and log_fields()).
    """
    ct = time.time()
    # A copy of a dict is a copy of its table: cheaper than building it key by key.
    fields = _RECORD_TEMPLATE.copy()
    fields["name"] = name
    fields["msg"] = msg
    fields["levelname"] = _getLevelName(level)
    fields["levelno"] = level
    fields["exc_info"] = exc_info
    fields["created"] = ct
    fields["msecs"] = int((ct - int(ct)) * 1000) + 0.0
    fields["relativeCreated"] = (ct - logging._startTime) * 1000
    fields["process"] = _pid if logging.logProcesses else None
    fields.update(extra)
    record = _new_object(_LogRecord)
    record.__dict__ = fields
    return record


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
