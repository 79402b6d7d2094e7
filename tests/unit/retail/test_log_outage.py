"""A log directory that cannot be written: one line when it starts, one when it ends, counted."""

import json
import subprocess
import sys
from pathlib import Path

from tests.support.unprivileged import unprivileged

BACKEND = Path(__file__).resolve().parents[3] / "backend"

# The directory turns unwritable, three flushes fail, it turns writable, two flushes work.
WRITER = """
import logging, os, sys
sys.path.insert(0, {backend!r})
from retail.logging import JsonFormatter, JsonLinesHandler

directory = {directory!r}
handler = JsonLinesHandler(os.path.join(directory, "application.log"), stdout=False)
handler.setFormatter(JsonFormatter())
log = logging.getLogger("outage")
log.addHandler(handler)
log.propagate = False
os.chmod(directory, 0o500)
for batch in range(3):
    for n in range(4):
        log.warning("lost %d-%d", batch, n)
    handler.flush()
os.chmod(directory, 0o700)
for n in range(2):
    log.warning("kept %d", n)
    handler.flush()
handler.close()
"""


def test_an_unwritable_log_directory_is_reported_once_with_the_lines_lost(tmp_path):
    """12 lines lost over 3 failed flushes: one WARNING line, then one line on recovery."""
    directory = tmp_path / "logs"
    directory.mkdir()
    script = WRITER.format(backend=str(BACKEND), directory=str(directory))
    result = subprocess.run(
        unprivileged([sys.executable, "-c", script]), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    reports = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(r["level"], r["event"], r["lost_lines"]) for r in reports] == [
        ("WARNING", "log.file_unwritable", 4),
        ("INFO", "log.file_writable", 12),
    ]
    assert "Permission denied" in reports[0]["message"]
    lines = (directory / "application.log").read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["kept 0", "kept 1"]
