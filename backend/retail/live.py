"""The live dashboard's streams in one worker: a cap, one poller, and their shutdown.

A stream holds one of the worker's threads for as long as a page stays open, so a
worker serves at most `capacity()` at once (RETAIL_LIVE_STREAMS, default half its
threads: the other half always answers the API; one thread, none). One poller thread
per worker reads the delta of each resolution the open streams show and hands the
same event to every stream: ten open tabs cost one query loop, not ten. When the
worker stops (config.workers), every stream is told to end at once, so a graceful
stop never waits its timeout on pages that would stay open for days.
"""

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

# Seconds between two polls of the read model, per resolution: a minute point changes
# every poll, an hour point is redrawn twice a minute.
POLL_SECONDS = {"minute": 2.0, "hour": 30.0}
# A comment this often keeps proxies and load balancers from closing a quiet stream,
# and finds a page that went away (its write fails).
HEARTBEAT_SECONDS = 15.0
# What EventSource waits before reconnecting, in milliseconds (the `retry:` field).
RECONNECT_MS = 3000

_threads = 1  # the worker's threads, told by config.workers before the app loads
_lock = threading.Lock()
_streams: set["Stream"] = set()
_closing = threading.Event()
_poller: threading.Thread | None = None


def threads_set(threads: int) -> None:
    """Record how many threads this worker serves requests with (config.workers)."""
    global _threads
    _threads = max(1, threads)


def capacity() -> int:
    """Return how many streams this worker serves at once."""
    raw = os.environ.get("RETAIL_LIVE_STREAMS", "").strip()
    if raw.isascii() and raw.isdigit():
        return int(raw)
    return _threads // 2


def stream_count() -> int:
    """Return the streams open in this worker now."""
    with _lock:
        return len(_streams)


class Stream:
    """One open page: the events the poller hands it, in order."""

    def __init__(self, resolution: str) -> None:
        self.resolution = resolution
        self.events: queue.SimpleQueue[str | None] = queue.SimpleQueue()


def stream_open(resolution: str, delta: Callable[..., dict]) -> Stream | None:
    """Open a stream, starting the poller; None when the worker is full or stopping.

    `delta(since=, now=, resolution=)` is the read the poller repeats.
    """
    global _poller
    with _lock:
        if _closing.is_set() or len(_streams) >= capacity():
            return None
        stream = Stream(resolution)
        _streams.add(stream)
        if _poller is None:
            _poller = threading.Thread(
                target=_poll, args=(delta,), name="retail-live-poller", daemon=True
            )
            _poller.start()
        return stream


def stream_close(stream: Stream) -> None:
    """Forget a stream whose page went away (the poller stops with the last one)."""
    with _lock:
        _streams.discard(stream)


def streams_end() -> None:
    """End every open stream now and refuse new ones: the worker is stopping."""
    _closing.set()
    with _lock:
        for stream in _streams:
            stream.events.put(None)


def event_text(document: dict[str, Any], *, event_id: str) -> str:
    """Return one server-sent event carrying `document` as JSON, with its id."""
    return f"id: {event_id}\nevent: delta\ndata: {json.dumps(document, separators=(',', ':'))}\n\n"


class Events:
    """The bytes of one open stream: the reconnect delay, `first`, then events and heartbeats.

    An iterator object rather than a generator: Django closes the response when the page
    goes away or the worker drops it, and a generator never started would skip its
    cleanup; close() here always forgets the stream.
    """

    def __init__(self, stream: Stream, first: str) -> None:
        self.stream = stream
        self.pending: bytes | None = f"retry: {RECONNECT_MS}\n\n{first}".encode()

    def __iter__(self) -> "Events":
        return self

    def __next__(self) -> bytes:
        if self.pending is not None:
            chunk, self.pending = self.pending, None
            return chunk
        try:
            event = self.stream.events.get(timeout=HEARTBEAT_SECONDS)
        except queue.Empty:
            return b": heartbeat\n\n"
        if event is None:
            self.close()
            raise StopIteration
        return event.encode()

    def close(self) -> None:
        """Forget the stream (called by Django when the response is closed)."""
        stream_close(self.stream)


def _poll(delta: Callable[..., dict]) -> None:
    """Read each shown resolution's delta when due and hand it to its streams."""
    global _poller
    since: dict[str, datetime] = {}
    due: dict[str, float] = {}
    failing = False
    while not _closing.is_set():
        with _lock:
            if not _streams:
                # Under the lock: a stream opened from now on starts a new poller.
                _poller = None
                return
            shown = {stream.resolution for stream in _streams}
        now = datetime.now(UTC)
        for resolution in shown:
            clock = time.monotonic()
            if due.get(resolution, 0.0) > clock:
                continue
            due[resolution] = clock + POLL_SECONDS.get(resolution, POLL_SECONDS["hour"])
            # A resolution first shown now starts here (its streams opened with a snapshot).
            start = since.setdefault(resolution, now)
            try:
                document = delta(since=start, now=now, resolution=resolution)
            except Exception:
                # The next poll tries again from the same `since`, so the pages miss
                # nothing; they keep what they show meanwhile. Logged once an outage,
                # not every two seconds while the database is away.
                if not failing:
                    logger.exception("live dashboard poll failed; retrying")
                failing = True
                continue
            if failing:
                logger.warning("live dashboard poll answers again")
                failing = False
            since[resolution] = now
            event = event_text(document, event_id=now.isoformat())
            with _lock:
                for stream in _streams:
                    if stream.resolution == resolution:
                        stream.events.put(event)
        _closing.wait(min(POLL_SECONDS.values()))
