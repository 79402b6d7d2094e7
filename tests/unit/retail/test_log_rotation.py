"""Several processes writing one rotating application.log lose, repeat and split no line."""

import gzip
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

BACKEND = Path(__file__).resolve().parents[3] / "backend"
PROCESSES = 4
RECORDS = 20_000

WRITER = """
import logging, sys
sys.path.insert(0, {backend!r})
from retail.logging import JsonFormatter, JsonLinesHandler, RequestIDFilter

handler = JsonLinesHandler({filename!r}, max_bytes=256 * 1024, backups=500, stdout=False)
handler.setFormatter(JsonFormatter())
handler.addFilter(RequestIDFilter())
root = logging.getLogger()
root.addHandler(handler)
root.setLevel(logging.INFO)
log = logging.getLogger("rotation.writer")
for seq in range({records}):
    # Lines of varying length, so chunks end anywhere relative to the size limit.
    log.info("record", extra={{"writer": {writer}, "seq": seq, "pad": "x" * (seq % 5 * 100)}})
"""


def _read_all(log_dir: Path) -> list[str]:
    lines: list[str] = []
    for path in sorted(log_dir.glob("application.log*")):
        if path.suffix == ".gz":
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        else:
            text = path.read_text("utf-8")
        lines.extend(text.splitlines())
    return lines


def test_four_processes_rotating_one_file_keep_every_record_exactly_once(tmp_path):
    """4 processes x 20,000 records, 256 KB files: each record once, every line JSON, gzip."""
    filename = str(tmp_path / "application.log")
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER.format(backend=str(BACKEND), filename=filename, records=RECORDS, writer=n),
            ],
            stderr=subprocess.PIPE,
        )
        for n in range(PROCESSES)
    ]
    deadline = time.monotonic() + 120
    try:
        for writer in writers:
            assert writer.wait(timeout=max(1, deadline - time.monotonic())) == 0, (
                writer.stderr.read().decode()
            )
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    assert not any(writer.stderr.read() for writer in writers), "a writer reported an error"
    lines = _read_all(tmp_path)
    seen = Counter()
    for line in lines:
        record = json.loads(line)  # a torn or interleaved line would not parse
        seen[(record["writer"], record["seq"])] += 1
    assert len(seen) == PROCESSES * RECORDS
    assert set(seen.values()) == {1}
    assert len(lines) == PROCESSES * RECORDS
    rotated = list(tmp_path.glob("application.log.*"))
    assert len(rotated) > 10 and all(path.suffix == ".gz" for path in rotated)


def test_a_rotation_gzips_in_few_large_pieces(tmp_path, monkeypatch):
    """A 3 MB file goes to gzip in 1 MB reads, not 8 KB ones (each a GIL hand-off)."""
    from retail.logging import JsonFormatter, JsonLinesHandler

    pieces: list[int] = []
    write = gzip.GzipFile.write
    monkeypatch.setattr(
        gzip.GzipFile, "write", lambda self, data: pieces.append(len(data)) or write(self, data)
    )
    handler = JsonLinesHandler(
        str(tmp_path / "application.log"), max_bytes=3 * 1024 * 1024, backups=2, stdout=False
    )
    handler.setFormatter(JsonFormatter())
    try:
        for seq in range(16_000):
            handler.emit_fields(
                time.time(), 20, "rotation", {"event": "record", "seq": seq, "pad": "x" * 200}
            )
        handler.flush()
    finally:
        handler.close()
    [rotated] = tmp_path.glob("application.log.*")
    assert len(gzip.decompress(rotated.read_bytes())) == sum(pieces) >= 3 * 1024 * 1024
    assert len(pieces) <= 4
