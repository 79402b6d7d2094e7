"""bench/middleware.py's time slices: a frozen process is stopped, a dead one is an error."""

import subprocess
import sys
from pathlib import Path

import pytest

from bench.middleware import _freeze, _stopped, _thawed_for
from tests.support.servers import wait_for


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait(10)


def test_a_frozen_process_is_stopped_until_its_slice(sleeper):
    _freeze([sleeper.pid], "sleeper")
    assert _stopped(sleeper.pid)
    wall = _thawed_for(0.05, [sleeper.pid], "sleeper")
    assert wall >= 0.05
    assert _stopped(sleeper.pid)


@pytest.mark.parametrize("reaped", [False, True], ids=["zombie", "reaped"])
def test_a_process_that_exited_is_an_error_not_a_frozen_one(sleeper, reaped):
    """A crashed variant, not yet joined (a zombie) or gone: its slices would count nothing."""
    sleeper.kill()
    if reaped:
        sleeper.wait(10)
    else:
        wait_for(lambda: _state(sleeper.pid) == "Z", timeout=10, what="the zombie")
    with pytest.raises(RuntimeError, match="sleeper exited"):
        _freeze([sleeper.pid], "sleeper")


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
