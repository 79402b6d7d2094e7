"""A writer process per server process for metric rows: the INSERT leaves the request's GIL.

Measured under continuous load (docs/observability-cost.md), the metric thread's INSERT
with its rollup trigger cost the request thread more than its own CPU: a thread that
holds the GIL while requests wait for it. Here the metric thread of `MetricBuffer` hands
each batch to a child process over a socket and waits, GIL released, for the child's
answer, the way a statsd agent takes writes off the application. The buffer keeps every
promise it made with a local writer, because the child is only its `writer`:

- a batch counts as written when the child answers after its COMMIT, so
  `flush_metrics()` still means written;
- the child's answer tells a refused row (DataError, IntegrityError, a value the driver
  cannot encode) from a failed connection, so the buffer isolates a refused row and keeps
  the rest for a retry exactly as before;
- a child that dies, or does not answer within `REPLY_TIMEOUT_SECONDS`, fails the batch
  like a lost connection (the rows stay buffered) and is replaced on the next batch. A
  child killed between its COMMIT and its answer is the one way a batch is written twice.

The child ignores SIGTERM and SIGINT, which a service manager or a terminal send to the
whole process group: it writes what it is given until its parent closes the socket, at
the parent's exit after the last flush, or by dying, and then exits. It logs through the
same settings (stdout inherited, the same application.log).

The child is `python -m retail.metric_writer FD`, spawned (not forked, so none of a
threaded parent's locks come along) with the parent's environment and import path.
"""

import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from retail.metrics import is_refused_row, metric_rows_insert, report_unwritable

# A batch of BATCH_SIZE rows is written in milliseconds; SQLite's busy timeout (20 s) is
# the longest a healthy child waits for the database's lock.
REPLY_TIMEOUT_SECONDS = 60.0
# How long the parent's exit waits for the child to finish its last batch and exit.
EXIT_TIMEOUT_SECONDS = 10.0
_FRAME_HEADER = struct.Struct("!I")
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS
_OK = b'{"ok":true}'
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


def _encoded(rows: Sequence[Any]) -> bytes:
    """Return the rows as one JSON array; rows whose metadata is not JSON are left out."""
    try:
        return orjson.dumps(rows, option=_JSON_OPTIONS)
    except TypeError:
        pass
    writable = []
    for row in rows:
        try:
            orjson.dumps(row, option=_JSON_OPTIONS)
        except TypeError:
            continue
        writable.append(row)
    report_unwritable(len(rows) - len(writable))
    return orjson.dumps(writable, option=_JSON_OPTIONS)


class MetricWriterProcess:
    """A `MetricBuffer` writer that has a child process insert each batch."""

    def __init__(self, *, reply_timeout: float = REPLY_TIMEOUT_SECONDS) -> None:
        self.reply_timeout = reply_timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._channel: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        """The running child's pid, if one runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def __call__(self, rows: Sequence[Any]) -> None:
        """Have the child write `rows` in one transaction; raise as the database would."""
        from django.db import DataError, OperationalError

        payload = _encoded(rows)
        with self._lock:
            try:
                channel = self._connected()
                _send_frame(channel, payload)
                reply = self._reply(channel)
            except (OSError, EOFError, WriterProcessError) as exc:
                self._discard()
                raise OperationalError(f"the metric writer process failed: {exc}") from exc
        if reply == _OK:
            return
        answer = orjson.loads(reply)
        error = DataError if answer["refused"] else OperationalError
        raise error(f"{answer['error']} in the metric writer process: {answer['detail']}")

    def close(self, timeout: float = EXIT_TIMEOUT_SECONDS) -> None:
        """Close the socket: the child exits once it has answered; wait for it."""
        with self._lock:
            process, channel = self._process, self._channel
            self._process = self._channel = None
            if channel is not None:
                channel.close()
            if process is not None:
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def _connected(self) -> socket.socket:
        if self._channel is not None and self._process is not None:
            if self._process.poll() is None:
                return self._channel
            self._discard()
        parent_end, child_end = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "retail.metric_writer", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                env=_child_environment(),
                stdin=subprocess.DEVNULL,
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self._channel = parent_end
        return parent_end

    def _reply(self, channel: socket.socket) -> bytes:
        # The first batch also waits for the child's start-up (Django's setup).
        with selectors.DefaultSelector() as selector:
            selector.register(channel, selectors.EVENT_READ)
            if not selector.select(self.reply_timeout):
                raise WriterProcessError(f"no answer within {self.reply_timeout:g} s")
        return _receive_frame(channel)

    def _discard(self) -> None:
        process, channel = self._process, self._channel
        self._process = self._channel = None
        if channel is not None:
            channel.close()
        if process is not None:
            process.kill()
            process.wait()


def _child_environment() -> dict[str, str]:
    from django.conf import settings

    environment = dict(os.environ)
    environment["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
    # The child writes the rows itself: it must not start a writer process of its own.
    environment["RETAIL_METRICS_WRITER"] = "thread"
    path = [_BACKEND_DIR, *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    return environment


def _answer(rows: list[list[Any]]) -> bytes:
    """Insert the rows; return the answer frame for the parent."""
    from django.db import close_old_connections, connection

    try:
        close_old_connections()
        metric_rows_insert(
            [
                (kind, value, metadata, datetime.fromisoformat(at))
                for kind, value, metadata, at in rows
            ]
        )
    except Exception as exc:
        refused = is_refused_row(exc)
        if not refused:
            # The next batch reconnects, as the buffer's own thread does after a failure.
            connection.close()
        cause = exc.__cause__ or exc
        return orjson.dumps(
            {"refused": refused, "error": type(cause).__name__, "detail": str(cause)[:500]}
        )
    return _OK


def serve(channel: socket.socket) -> None:
    """Answer each batch the parent sends until it closes the socket."""
    while True:
        try:
            payload = _receive_frame(channel)
        except (EOFError, ConnectionError):
            return
        _send_frame(channel, _answer(orjson.loads(payload)))


def main() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = socket.socket(fileno=int(sys.argv[1]))
    import django

    django.setup()
    from retail.logging import flush_logs

    try:
        serve(channel)
    finally:
        channel.close()
        flush_logs()


if __name__ == "__main__":
    main()
