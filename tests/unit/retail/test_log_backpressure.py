"""A full log buffer slows its caller down, but never behind a rotation's gzip."""

import json
import logging
import threading
from contextlib import contextmanager

import pytest

from retail.logging import JsonFormatter, JsonLinesHandler
from tests.support.servers import wait_for

CAPACITY = 10


@pytest.fixture
def logged(tmp_path):
    """A logger whose only handler writes `application.log` with a 10-record buffer."""
    handler = JsonLinesHandler(
        str(tmp_path / "application.log"), stdout=False, capacity=CAPACITY, flush_interval=3600
    )
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.backpressure")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, handler, tmp_path / "application.log"
    logger.removeHandler(handler)
    handler.close()


@contextmanager
def _write_under_way(handler):
    """Hold the handler's write lock from another thread, as a rotation's gzip does."""
    holding, release = threading.Event(), threading.Event()

    def rotation() -> None:
        with handler._write_lock:
            holding.set()
            release.wait(30)

    rotating = threading.Thread(target=rotation)
    rotating.start()
    assert holding.wait(10)
    try:
        yield
    finally:
        release.set()
        rotating.join(10)


def _sequence(path) -> list[int]:
    if not path.exists():
        return []
    return [json.loads(line)["seq"] for line in path.read_text().splitlines()]


def test_the_thread_that_fills_the_buffer_writes_it(logged):
    logger, handler, path = logged
    for seq in range(CAPACITY - 1):
        logger.info("record", extra={"seq": seq})
    assert _sequence(path) == []
    logger.info("record", extra={"seq": CAPACITY - 1})
    assert _sequence(path) == list(range(CAPACITY))
    assert len(handler._records) == 0


def test_a_write_under_way_is_not_waited_for_until_the_buffer_is_ten_times_full(logged):
    """While another thread writes (a rotation gzipping), callers queue; at 10x they wait."""
    logger, handler, path = logged
    with _write_under_way(handler):
        backlog = CAPACITY * 10 - 1
        for seq in range(backlog):
            logger.info("record", extra={"seq": seq})
        assert len(handler._records) == backlog
        last = threading.Thread(
            target=logger.info, args=("record",), kwargs={"extra": {"seq": backlog}}
        )
        last.start()
        last.join(0.5)
        assert last.is_alive(), "the record that makes the buffer ten times full waits"
    last.join(10)
    assert not last.is_alive()
    assert _sequence(path) == list(range(CAPACITY * 10))


def test_the_backlog_queued_behind_a_write_is_written_by_the_writer_when_it_ends(logged):
    """No later record needed: the writer thread is woken and writes what queued meanwhile."""
    logger, handler, path = logged
    with _write_under_way(handler):
        for seq in range(CAPACITY + 5):
            logger.info("record", extra={"seq": seq})
    # The fixture's writer ticks once an hour: only the wake makes it write now.
    wait_for(lambda: len(_sequence(path)) == CAPACITY + 5, timeout=10, what="the backlog")
    assert _sequence(path) == list(range(CAPACITY + 5))
