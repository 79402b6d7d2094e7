"""Run a command subject to file permissions, even when the tests run as root."""

import os
import shutil

import pytest

# Root reads and writes any file whatever its mode: without these two capabilities it
# obeys the mode bits like any user (and still owns what it created).
_DROPPED = "-dac_override,-dac_read_search"


def unprivileged(command: list[str]) -> list[str]:
    """Return `command` so that it runs subject to file modes; skip when that cannot be."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): root reads any file")
    return [setpriv, f"--inh-caps={_DROPPED}", f"--bounding-set={_DROPPED}", *command]
