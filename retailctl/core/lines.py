"""Read log files as lines, in bounded memory: forward, backward, or searched for bytes.

Plain files and `.gz` (decompressed incrementally, a truncated one up to its damage).
A line is assembled from the pieces it spans, so a line longer than any read costs its
length, not its length times the reads; a line longer than MAX_LINE_BYTES is reported
(None, or a callback) and never held whole. The record-level readers are in logs.py.
"""

import mmap
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK_BYTES = 8 * 1024 * 1024
_WINDOW = 64 * 1024 * 1024
# No record the backend writes comes near this; a longer line is skipped and counted,
# never held whole, so reading stays linear and memory bounded whatever a file holds.
MAX_LINE_BYTES = 16 * 1024 * 1024


class TruncatedGzip(Exception):
    """A .gz file ended before its end-of-stream marker (or is corrupt)."""


def file_chunks(path: Path, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Yield a log file's bytes, decompressing .gz incrementally.

    Decompressing by hand (not gzip.open) hands out everything before the damage of a
    truncated or corrupt file, then raises TruncatedGzip. No chunk exceeds `size`, however
    well the data compresses (a megabyte of repeated bytes inflates a thousandfold).
    """
    with open(path, "rb") as stream:
        if path.suffix != ".gz":
            while chunk := stream.read(size):
                yield chunk
            return
        inflater = zlib.decompressobj(wbits=31)
        while compressed := stream.read(1024 * 1024):
            while compressed:
                try:
                    data = inflater.decompress(compressed, size)
                except zlib.error as exc:
                    raise TruncatedGzip(f"corrupt: {exc}") from None
                if data:
                    yield data
                compressed = inflater.unconsumed_tail
                if not compressed and inflater.eof and inflater.unused_data:
                    # Concatenated gzip members are one valid file.
                    compressed = inflater.unused_data
                    inflater = zlib.decompressobj(wbits=31)
        if not inflater.eof:
            raise TruncatedGzip("ended before the end-of-stream marker")


def search_chunks(
    chunks: Iterator[bytes],
    needle: bytes,
    on_line: Callable[[bytes, int], None],
    advance,
    on_oversized: Callable[[], None] = lambda: None,
) -> None:
    """Call on_line for every whole line holding `needle`; parse nothing else.

    The unfinished line at the end of a chunk is carried into the next; one longer than
    MAX_LINE_BYTES is dropped as it goes (on_oversized is called if it holds `needle`),
    so a line without end never makes each chunk copy everything before it.
    """
    carry = b""
    base = 0  # offset of carry[0] in the (decompressed) file
    oversized = False  # the carried line outgrew the limit: only its last bytes are kept
    holds_needle = False  # ...and one of its dropped parts held the needle
    for chunk in chunks:
        advance(len(chunk))
        buf = carry + chunk
        end = buf.rfind(b"\n") + 1
        pos = 0
        if oversized and end:
            # The oversized line ends in this chunk: report it, never parse it.
            pos = buf.find(b"\n") + 1
            if holds_needle or needle in buf[:pos]:
                on_oversized()
            oversized = holds_needle = False
        while True:
            hit = buf.find(needle, pos, end)
            if hit < 0:
                break
            start = buf.rfind(b"\n", 0, hit) + 1
            stop = buf.find(b"\n", hit, end)
            if stop - start > MAX_LINE_BYTES:
                on_oversized()
            else:
                on_line(buf[start:stop], base + start)
            pos = stop + 1
        carry = buf[end:]
        base += end
        if len(carry) > MAX_LINE_BYTES:
            keep = len(needle) - 1  # a needle may straddle this chunk and the next
            holds_needle = holds_needle or needle in carry
            oversized = True
            base += len(carry) - keep
            carry = carry[len(carry) - keep :] if keep else b""
    if oversized:
        if holds_needle or needle in carry:
            on_oversized()
    elif needle in carry:
        on_line(carry, base)


def search_mapped(
    path: Path,
    needle: bytes,
    on_line: Callable[[bytes, int], None],
    advance,
    on_oversized: Callable[[], None] = lambda: None,
) -> None:
    """Like search_chunks over a memory-mapped plain file: no copies, the OS pages it in."""
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            pos = 0
            # Searched window by window (overlapping by the needle) to report progress.
            for window_start in range(0, size, _WINDOW):
                window_end = min(size, window_start + _WINDOW + len(needle) - 1)
                pos = max(pos, window_start)
                while True:
                    hit = mapped.find(needle, pos, window_end)
                    if hit < 0:
                        break
                    start = mapped.rfind(b"\n", 0, hit) + 1
                    stop = mapped.find(b"\n", hit)
                    stop = size if stop < 0 else stop
                    if stop - start > MAX_LINE_BYTES:
                        on_oversized()
                    else:
                        on_line(mapped[start:stop], start)
                    pos = stop + 1
                advance(min(_WINDOW, size - window_start))


class LineBuilder:
    """One line assembled from pieces, holding at most MAX_LINE_BYTES of it.

    Pieces are kept in a list and joined once the line is complete, so a line that spans
    many reads costs its length, not its length times the number of reads; past the
    limit the pieces are let go and only the length is counted.
    """

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.size = 0

    def add(self, piece: bytes) -> None:
        """Add the next piece (or, read backwards, the previous one)."""
        self.size += len(piece)
        if self.size > MAX_LINE_BYTES:
            self.pieces.clear()
        elif piece:
            self.pieces.append(piece)

    def take(self, *, reversed_pieces: bool = False) -> bytes | None:
        """Return the line and start a new one; None when it outgrew the limit."""
        oversized = self.size > MAX_LINE_BYTES
        pieces = self.pieces[::-1] if reversed_pieces else self.pieces
        line = None if oversized else b"".join(pieces)
        self.pieces, self.size = [], 0
        return line


# A line as the readers hand it out: its bytes (None when longer than MAX_LINE_BYTES) and
# the offset of its first byte.
Line = tuple[bytes | None, int]


def lines_backward(path: Path, block: int = 256 * 1024) -> Iterator[Line]:
    """Yield the non-empty lines of a plain file from its end backwards, each with its offset."""
    with open(path, "rb") as stream:
        position = stream.seek(0, os.SEEK_END)
        line = LineBuilder()  # the pieces of the line being read backwards, last first
        while position > 0:
            step = min(block, position)
            position -= step
            stream.seek(position)
            buf = stream.read(step)
            end = len(buf)
            newline = buf.rfind(b"\n", 0, end)
            while newline >= 0:
                line.add(buf[newline + 1 : end])
                if line.size:
                    yield line.take(reversed_pieces=True), position + newline + 1
                else:
                    line.take()
                end = newline
                newline = buf.rfind(b"\n", 0, end)
            line.add(buf[:end])
        if line.size:
            yield line.take(reversed_pieces=True), 0


class LineSplitter:
    """Cut a stream of chunks into lines, in order, each with its offset in the stream."""

    def __init__(self, offset: int = 0) -> None:
        self.offset = offset  # where the unfinished line starts
        self.line = LineBuilder()

    def feed(self, chunk: bytes) -> Iterator[Line]:
        """Yield the lines that `chunk` completes; keep its unfinished end."""
        start = 0
        newline = chunk.find(b"\n")
        while newline >= 0:
            self.line.add(chunk[start:newline])
            size = self.line.size
            yield self.line.take(), self.offset
            self.offset += size + 1
            start = newline + 1
            newline = chunk.find(b"\n", start)
        self.line.add(chunk[start:])

    @property
    def pending(self) -> int:
        """Bytes of the unfinished line."""
        return self.line.size

    def rest(self) -> Iterator[Line]:
        """Yield the unfinished line, if any, as the last one."""
        if self.line.size:
            yield self.line.take(), self.offset


def lines_forward(path: Path) -> Iterator[Line]:
    """Yield every line of a plain or .gz file, in order, each with its offset."""
    splitter = LineSplitter()
    for chunk in file_chunks(path):
        yield from splitter.feed(chunk)
    yield from splitter.rest()
