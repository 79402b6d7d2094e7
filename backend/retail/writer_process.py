"""A writer process per server process: metric rows and log lines leave the request's GIL.

Measured under continuous load (docs/observability-cost.md), the writer threads of a server
process cost its request thread more than their own CPU: threads that hold the GIL while
requests wait for it, and work that runs on the request thread's core. Here those threads
hand their batches to a child process over a socket each and wait, GIL released, for the
child's answer, the way a statsd agent or a log shipper takes writes off the application.
Each client keeps every promise it made when it wrote itself, because the child is only
its writer:

- `MetricRowsWriter` (the `writer` of retail.metrics.MetricBuffer): a batch counts as
  written when the child answers after its COMMIT, so `flush_metrics()` still means
  written; the answer tells a refused row (DataError, IntegrityError, a value the driver
  cannot encode) from a failed connection, so the buffer isolates a refused row and keeps
  the rest for a retry exactly as before. Each batch carries a token the child records in
  `retail_metric_batch` in the batch's own transaction: when an answer is lost (the
  child died or went silent after it may have committed), the retry names the lost
  batches' tokens and the rows of each, and the child skips the rows of a batch whose
  token is there, so no row is written twice.
- retail.logging.JsonLinesHandler sends its batch (each line formatted, or the parts
  `log_fields()` gave it, which the child formats with the same formatter) and counts it
  written when the child answers after writing it to stdout and `application.log`. Until
  the child answers, and whenever it does not, the handler formats and writes the batch
  itself: no line waits for the child, none is lost with it.
- A child that dies, or does not answer within `REPLY_TIMEOUT_SECONDS`, fails the batch
  (the metric rows stay buffered, the log lines are written by the handler) and is
  replaced on the next batch. One that exited by itself (killed, out of memory), found
  before a batch or by the batch it failed, is logged once as `writer_process.exited`.
  A child killed between writing its log lines and its answer is the one way lines are
  written twice (a log has no transaction to record a token in).

The child ignores SIGTERM and SIGINT, which a service manager or a terminal send to the
whole process group: it writes what it is given until its parent closes the sockets, at
the parent's exit after the last flush, or by dying, and then exits. It runs the same
settings (stdout inherited, the same application.log, its own records written by itself).

The child is `python -m retail.writer_process METRICS_FD LOGS_FD`, spawned (not forked,
so none of a threaded parent's locks come along) with the parent's environment and import
path. It answers a channel once Django is set up; the metric client waits for that, the
log client writes by itself meanwhile.
"""

import logging
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from retail.metrics import is_refused_row, metric_rows_insert, report_unwritable

logger = logging.getLogger(__name__)

# A batch of BATCH_SIZE rows is written in milliseconds; SQLite's busy timeout (20 s) is
# the longest a healthy child waits for the database's lock.
REPLY_TIMEOUT_SECONDS = 60.0
# How long the parent's exit waits for the child to finish its last batch and exit.
EXIT_TIMEOUT_SECONDS = 10.0
# How long a child that failed a batch is given to be found exited before it is killed.
EXITING_GRACE_SECONDS = 0.5
# How many batches without an answer a metric client remembers (children that keep dying
# before they answer); forgetting the oldest can only write its rows twice, never lose them.
MAX_UNANSWERED_BATCHES = 32
# Batch tokens are kept this long, far beyond a retry (the buffer retries within 30 s),
# and pruned by the child this often.
BATCH_TOKEN_RETENTION = timedelta(days=1)
BATCH_TOKEN_PRUNE_SECONDS = 600.0
METRICS, LOGS = "metrics", "logs"
CHANNELS = (METRICS, LOGS)
# The log handler of the child that writes what the parent's handler sends.
LOG_HANDLER_NAME = "json"
_FRAME_HEADER = struct.Struct("!I")
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS
OK = b'{"ok":true}'
_READY = b'{"ready":true}'
_BACKEND_DIR = str(Path(__file__).resolve().parent.parent)


class WriterProcessError(Exception):
    """The child could not be reached, or did not answer in time."""


def _send_frame(channel: socket.socket, payload: bytes) -> None:
    channel.sendall(_FRAME_HEADER.pack(len(payload)) + payload)


def _receive_exactly(channel: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = channel.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the other end closed the socket")
        chunks += chunk
    return bytes(chunks)


def _receive_frame(channel: socket.socket) -> bytes:
    (size,) = _FRAME_HEADER.unpack(_receive_exactly(channel, _FRAME_HEADER.size))
    return _receive_exactly(channel, size)


def _readable(channel: socket.socket, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(channel, selectors.EVENT_READ)
        return bool(selector.select(timeout))


class _Child:
    """One spawned child: its process, and per client a socket with its own lock.

    Each socket is used and closed under its own lock, so the log thread and the metric
    thread never wait for each other's batches.
    """

    def __init__(self, process: subprocess.Popen, channels: dict[str, socket.socket]) -> None:
        self.process = process
        self.channels: dict[str, socket.socket | None] = dict(channels)
        self.locks = {name: threading.Lock() for name in channels}
        self.ready: set[str] = set()

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()

    def close_channel(self, name: str) -> None:
        """Close one socket; called with its lock held."""
        channel, self.channels[name] = self.channels[name], None
        if channel is not None:
            channel.close()

    def close_idle_channels(self) -> None:
        # A socket whose lock is taken is in use by a thread that will find the process
        # gone and close it itself.
        for name, lock in self.locks.items():
            if lock.acquire(blocking=False):
                try:
                    self.close_channel(name)
                finally:
                    lock.release()


class WriterProcess:
    """The writer process of this server process, shared by the metric and the log clients.

    Started with the first batch that needs it, replaced when it fails, ended when the
    last client that attached to it has closed (the log handler's at logging's shutdown,
    after the metric buffer's last flush); a client that comes later starts a new one.
    """

    def __init__(self, *, reply_timeout: float = REPLY_TIMEOUT_SECONDS) -> None:
        self.reply_timeout = reply_timeout
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._clients: set[str] = set()

    @property
    def pid(self) -> int | None:
        """The running child's pid, if one runs."""
        child = self._child
        return child.process.pid if child is not None and child.alive() else None

    def attach(self, client: str) -> None:
        """Count `client` among those whose close() may end the child."""
        with self._lock:
            self._clients.add(client)

    def detach(self, client: str) -> None:
        """`client` writes no more: the last to detach closes the child."""
        with self._lock:
            self._clients.discard(client)
            last = not self._clients
        if last:
            self.close()

    def start(self) -> None:
        """Spawn the child now, without waiting for it to be ready."""
        self._running()

    def ready(self, name: str) -> bool:
        """Return whether a running child has said it serves channel `name`, without waiting."""
        child = self._child
        if child is None or not child.alive():
            return False
        if name in child.ready:
            return True
        lock = child.locks[name]
        if not lock.acquire(blocking=False):
            return False
        try:
            channel = child.channels[name]
            if channel is None or not _readable(channel, 0):
                return False
            try:
                self._take_ready(child, name, channel)
            except (OSError, EOFError, WriterProcessError):
                return False
            return True
        finally:
            lock.release()

    def request(self, name: str, payload: bytes) -> bytes:
        """Send `payload` on channel `name`; return the child's answer after its work."""
        child = self._running()
        with child.locks[name]:
            channel = child.channels[name]
            try:
                if channel is None:
                    raise WriterProcessError("the writer process was replaced or closed")
                if name not in child.ready:
                    self._take_ready(child, name, channel)
                _send_frame(channel, payload)
                if not _readable(channel, self.reply_timeout):
                    raise WriterProcessError(f"no answer within {self.reply_timeout:g} s")
                return _receive_frame(channel)
            except (OSError, EOFError, WriterProcessError) as exc:
                self._discard(child)
                child.close_channel(name)
                raise WriterProcessError(f"the writer process failed: {exc}") from exc

    def close(self, timeout: float = EXIT_TIMEOUT_SECONDS) -> None:
        """Close the sockets: the child exits once it has answered; wait for it."""
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        for name, lock in child.locks.items():
            with lock:
                child.close_channel(name)
        try:
            child.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()

    def forget_after_fork(self) -> None:
        """In a forked process: drop the parent's child, closing only our copies of its sockets."""
        child, self._child = self._child, None
        self._lock = threading.Lock()
        if child is not None:
            for channel in child.channels.values():
                if channel is not None:
                    channel.close()

    def _take_ready(self, child: _Child, name: str, channel: socket.socket) -> None:
        # The child's first frame on each channel, sent once its Django is set up; the
        # first batch after a spawn waits for it.
        if not _readable(channel, self.reply_timeout):
            raise WriterProcessError(f"not ready within {self.reply_timeout:g} s")
        if _receive_frame(channel) != _READY:
            raise WriterProcessError("the writer process sent no greeting")
        child.ready.add(name)

    def _running(self) -> _Child:
        with self._lock:
            child = self._child
            if child is not None and child.alive():
                return child
            if child is not None:
                child.kill()
                child.close_idle_channels()
            self._child = _spawn()
            running = self._child
        if child is not None:
            _report_exited(child)
        return running

    def _discard(self, child: _Child) -> None:
        with self._lock:
            if self._child is not child:
                # Replaced or closed meanwhile (or a parent's child after a fork): whoever
                # took it out of service ended it and said how.
                return
            self._child = None
        try:
            # A child whose socket failed because it is dying takes a moment to be
            # reapable (its threads exit after its sockets close).
            child.process.wait(timeout=EXITING_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()  # alive, but failing its batches: ours to end
        else:
            _report_exited(child)


def _report_exited(child: _Child) -> None:
    """Say that a child exited by itself (killed, out of memory), not closed or discarded here.

    Its clients report the batch it failed, if any, not why: this says which process went
    and how, once per child.
    """
    code = child.process.returncode
    try:
        cause = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    except ValueError:
        cause = f"signal {-code}"
    logger.warning(
        "writer_process.exited: the writer process %d exited (%s); the next batch starts another",
        child.process.pid,
        cause,
        extra={"event": "writer_process.exited", "pid": child.process.pid, "exit_code": code},
    )


def _spawn() -> _Child:
    pairs = {name: socket.socketpair() for name in CHANNELS}
    child_fds = [pairs[name][1].fileno() for name in CHANNELS]
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "retail.writer_process", *map(str, child_fds)],
            pass_fds=child_fds,
            env=_child_environment(),
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        for parent_end, _ in pairs.values():
            parent_end.close()
        raise
    finally:
        for _, child_end in pairs.values():
            child_end.close()
    return _Child(process, {name: parent_end for name, (parent_end, _) in pairs.items()})


def _child_environment() -> dict[str, str]:
    from django.conf import settings

    environment = dict(os.environ)
    environment["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
    # The child writes itself: it must not start a writer process of its own.
    environment["RETAIL_METRICS_WRITER"] = "thread"
    environment["RETAIL_LOG_WRITER"] = "thread"
    path = [_BACKEND_DIR, *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    return environment


_shared: WriterProcess | None = None
_shared_lock = threading.Lock()


def shared_writer_process() -> WriterProcess:
    """This process's writer process (one per process, started when first needed)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = WriterProcess()
    return _shared


def _forget_after_fork() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()
    if _shared is not None:
        _shared.forget_after_fork()


os.register_at_fork(after_in_child=_forget_after_fork)


# --- metric rows -----------------------------------------------------------------------


def _json_rows(rows: Sequence[Any]) -> list[Any]:
    """Return the rows orjson can write; the others are left out and counted."""
    writable = []
    for row in rows:
        try:
            orjson.dumps(row, option=_JSON_OPTIONS)
        except TypeError:
            continue
        writable.append(row)
    report_unwritable(len(rows) - len(writable))
    return writable


class MetricRowsWriter:
    """A `MetricBuffer` writer that has the writer process insert each batch."""

    def __init__(self, process: WriterProcess) -> None:
        self.process = process
        # The batches sent whose answer never came, newest first: each one's token and
        # its rows not known to be written since. The buffer hands those same row objects
        # back for the retry, which is how they are found in it.
        self._unanswered: list[tuple[str, list[Any]]] = []
        process.attach(METRICS)

    @property
    def pid(self) -> int | None:
        """The running child's pid, if one runs."""
        return self.process.pid

    def __call__(self, rows: Sequence[Any]) -> None:
        """Have the child write `rows` in one transaction; raise as the database would."""
        from django.db import DataError, OperationalError

        token = uuid.uuid4().hex
        try:
            payload = self._payload(token, rows)
        except TypeError:
            rows = _json_rows(rows)
            payload = self._payload(token, rows)
        try:
            reply = self.process.request(METRICS, payload)
        except WriterProcessError as exc:
            unanswered = [(token, list(rows)), *self._unanswered]
            self._unanswered = unanswered[:MAX_UNANSWERED_BATCHES]
            raise OperationalError(str(exc)) from exc
        if reply == OK:
            self._written(rows)
            return
        answer = orjson.loads(reply)
        error = DataError if answer["refused"] else OperationalError
        raise error(f"{answer['error']} in the metric writer process: {answer['detail']}")

    def close(self) -> None:
        """The buffer writes no more rows (its last flush is done)."""
        self.process.detach(METRICS)

    def _payload(self, token: str, rows: Sequence[Any]) -> bytes:
        """The batch for the child: its token, the lost batches' rows in it, the rows."""
        unanswered = []
        if self._unanswered:
            # The rows of a lost batch are alive (held there), so no other row has their id.
            index_of = {id(row): index for index, row in enumerate(rows)}
            for token_sent, sent in self._unanswered:
                indexes = [index_of[id(row)] for row in sent if id(row) in index_of]
                if indexes:
                    unanswered.append((token_sent, indexes))
        batch = {"token": token, "unanswered": unanswered, "rows": rows}
        return orjson.dumps(batch, option=_JSON_OPTIONS)

    def _written(self, rows: Sequence[Any]) -> None:
        # Written now or skipped as written before: either way no lost batch holds them.
        if not self._unanswered:
            return
        written = {id(row) for row in rows}
        remaining = (
            (token, [row for row in sent if id(row) not in written])
            for token, sent in self._unanswered
        )
        self._unanswered = [(token, sent) for token, sent in remaining if sent]


# --- the child -------------------------------------------------------------------------


def _insert_rows(payload: bytes) -> bytes:
    """Insert the rows not written before and record the batch; return the answer frame."""
    from django.db import close_old_connections, connection, transaction

    try:
        close_old_connections()
        batch = orjson.loads(payload)
        rows = [
            (kind, value, metadata, datetime.fromisoformat(at))
            for kind, value, metadata, at in batch["rows"]
        ]
        with transaction.atomic():
            written = _written_before(batch["unanswered"])
            metric_rows_insert([row for index, row in enumerate(rows) if index not in written])
            _record_batch(batch["token"])
    except Exception as exc:
        refused = is_refused_row(exc)
        if not refused:
            # The next batch reconnects, as the buffer's own thread does after a failure.
            connection.close()
        return _failure(exc, refused=refused)
    return OK


def _written_before(unanswered: list[Any]) -> set[int]:
    """Indexes of the batch's rows that a lost batch whose token is recorded already wrote."""
    if not unanswered:
        return set()
    from retail.models import MetricBatch

    tokens = [token for token, _ in unanswered]
    recorded = set(MetricBatch.objects.filter(token__in=tokens).values_list("token", flat=True))
    return {index for token, indexes in unanswered if token in recorded for index in indexes}


_next_token_prune = 0.0


def _record_batch(token: str) -> None:
    from django.utils import timezone

    from retail.models import MetricBatch

    global _next_token_prune
    now = timezone.now()
    MetricBatch.objects.create(token=token, written_at=now)
    tick = time.monotonic()
    if tick >= _next_token_prune:
        _next_token_prune = tick + BATCH_TOKEN_PRUNE_SECONDS
        MetricBatch.objects.filter(written_at__lt=now - BATCH_TOKEN_RETENTION).delete()


def _log_writer() -> Callable[[bytes], bytes]:
    from retail.logging import handler_named

    handler = handler_named(LOG_HANDLER_NAME)

    def write_lines(payload: bytes) -> bytes:
        if handler is None:
            return _failure(LookupError(f"no log handler named {LOG_HANDLER_NAME!r}"))
        try:
            handler.write_sent(orjson.loads(payload))
        except Exception as exc:
            return _failure(exc)
        return OK

    return write_lines


def _failure(exc: BaseException, *, refused: bool = False) -> bytes:
    cause = exc.__cause__ or exc
    return orjson.dumps(
        {"refused": refused, "error": type(cause).__name__, "detail": str(cause)[:500]}
    )


def serve(channel: socket.socket, answer: Callable[[bytes], bytes]) -> None:
    """Say ready, then answer each batch the parent sends until it closes the socket."""
    try:
        _send_frame(channel, _READY)
        while True:
            payload = _receive_frame(channel)
            _send_frame(channel, answer(payload))
    except (EOFError, ConnectionError):
        return
    finally:
        channel.close()


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    metrics_channel, logs_channel = (socket.socket(fileno=int(fd)) for fd in sys.argv[1:3])
    import django

    django.setup()
    from retail.logging import flush_logs

    servers = [
        threading.Thread(target=serve, args=(metrics_channel, _insert_rows), name=METRICS),
        threading.Thread(target=serve, args=(logs_channel, _log_writer()), name=LOGS),
    ]
    for server in servers:
        server.start()
    try:
        for server in servers:
            server.join()
    finally:
        flush_logs()


if __name__ == "__main__":
    main()
