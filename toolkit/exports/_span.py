"""Cut an uncompressed JSON Lines export into parts by byte range, the line scan in C (numpy).

A pool maps JSON Lines parts in its workers (see :mod:`toolkit.map_pool`); the process that cuts
them only has to know where each chunk of ``chunk_rows`` rows ends. Reading every line as a bytes
object, joining each part's lines and writing them to a spool file for a worker cost ~1.5 CPU-s per
1M rows (430 MB) in that process, on the critical path of a replay. Here the file is scanned in
16 MB windows of a read-only mapping (reading it into a buffer copied every byte out of the page
cache: 0.22-0.27 -> 0.17 CPU-s per 430 MB, measured), newlines are found with numpy, and a part is
only a byte range of the file (:class:`JsonlSpan`); the worker reads its own bytes. Chunks, line
numbers and rows are exactly those of :func:`toolkit.exports._jsonl.iter_jsonl_parts` (tested against it): a row is a line that
is not blank (all whitespace), a chunk ends right after its ``chunk_rows``-th row.

Gzip files are not cut here (a byte range of a compressed stream is not its lines).
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ExportError
from ._chunk import RawColumns
from ._jsonl import JsonlPart

__all__ = ["JsonlSpan", "iter_jsonl_spans"]

_BLOCK_BYTES = 1 << 24
_NEWLINE = 10
_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 11, 12, 13, 32]] = True  # what bytes.isspace() counts as whitespace


@dataclass(frozen=True)
class JsonlSpan:
    """One chunk of an uncompressed JSON Lines file as its byte range: loaded where it is mapped."""

    path: str
    offset: int
    length: int
    first_line: int
    rows_in: int
    revenue_keys: tuple[str, ...]

    def raw(self) -> RawColumns:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(self.length)
        if len(data) != self.length:
            raise ExportError(f"{self.path}: the file got shorter while it was read (line {self.first_line} on); "
                              "map a copy that is not being written")
        return JsonlPart(data, self.first_line, self.rows_in, self.revenue_keys).raw()


def _blank(buf: bytes | memoryview, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each line ``buf[start:end]`` (newline excluded) is blank: empty, or all whitespace.
    Only lines that start with whitespace are looked at one by one (JSON lines start with ``{``)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    empty = starts >= ends
    first = arr[np.minimum(starts, max(len(arr) - 1, 0))] if len(arr) else np.zeros(len(starts), dtype=np.uint8)
    blank = empty.copy()
    for i in np.flatnonzero(~empty & _SPACE[first]).tolist():
        blank[i] = bytes(buf[starts[i]:ends[i]]).isspace()
    return blank


def _mapped_windows(fh, size: int, window: int) -> Generator[tuple[memoryview, bool], int, None]:
    """The file from each offset on, ``window`` bytes at a time, as views of read-only mappings of
    the page cache (no copy; populated as mapped: faulting each page in as it was scanned cost
    as much as the copy it saves). Send the bytes used; the next window starts after them.

    A file that shrinks while it is cut is an ExportError at the next window (its size is checked
    before each mapping: a page past the end of a mapped file cannot be read). One truncated in
    place during the few milliseconds a window is scanned would end the process (SIGBUS), as with
    any mapped file: the error tells to map a copy that is not being written."""
    pos = 0
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    while True:
        if os.fstat(fh.fileno()).st_size < size:
            raise ExportError(f"{fh.name}: the file got shorter while it was cut (at byte {pos}); "
                              "map a copy that is not being written")
        base = pos - pos % mmap.ALLOCATIONGRANULARITY
        length = min(size - base, pos - base + window)
        mm = mmap.mmap(fh.fileno(), length, flags=flags, prot=mmap.PROT_READ, offset=base)
        view = memoryview(mm)[pos - base:]
        at_end = base + length >= size
        try:
            used = yield view, at_end
        finally:
            view.release()
            mm.close()
        if at_end:
            return
        window = window if used else 2 * window  # a line longer than the window: a bigger one
        pos += used


def _read_windows(fh, window: int) -> Generator[tuple[memoryview, bool], int, None]:
    """:func:`_mapped_windows` for what cannot be mapped (a pipe, ...): reads into one buffer,
    what is not used moves to its front."""
    block = bytearray(window)
    kept = 0  # bytes at the front of block left from the last read (a line not ended yet)
    while True:
        if kept == len(block):  # a line longer than the buffer: make room
            block.extend(bytes(len(block)))
        got = fh.readinto(memoryview(block)[kept:])
        view = memoryview(block)[:kept + got]
        try:
            used = yield view, not got
        finally:
            view.release()
        if not got:
            return
        tail = bytes(block[used:kept + got])  # the unfinished line (short): to the front of the buffer
        kept = len(tail)
        block[:kept] = tail


def _windows(fh, window: int, mapped: bool | None) -> Generator[tuple[memoryview, bool], int, None]:
    info = os.fstat(fh.fileno())
    if info.st_size and (mapped or (mapped is None and stat.S_ISREG(info.st_mode))):  # an empty file cannot be mapped
        return _mapped_windows(fh, info.st_size, window)
    return _read_windows(fh, window)


def iter_jsonl_spans(path: Path, chunk_rows: int, revenue_keys: Sequence[str], *,
                     block_bytes: int = _BLOCK_BYTES, mapped: bool | None = None) -> Iterator[JsonlSpan]:
    """The chunks of an uncompressed JSON Lines file as byte ranges (see the module doc).
    ``mapped``: scan a read-only mapping of the file (default for a regular file that is not
    empty) or read it ``block_bytes`` at a time."""
    keys = tuple(revenue_keys)
    name = str(Path(path).resolve())  # workers may run in another folder (a fork server started earlier)
    part_start = 0  # byte offset where the current part starts
    part_line = 1  # its first line number
    part_rows = 0
    line_no = 1  # number of the next line to read
    pos = 0  # file offset of buf[0]
    with open(path, "rb", buffering=0) as fh:
        windows = _windows(fh, block_bytes, mapped)
        buf, at_end = next(windows)
        while True:
            if not buf:
                break
            nl = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == _NEWLINE)
            if at_end and buf[-1] != _NEWLINE:
                nl = np.append(nl, len(buf))  # the last line has no newline
            if not len(nl):
                if at_end:
                    break
                buf, at_end = windows.send(0)  # a line longer than the window: read more
                continue
            starts = np.concatenate(([0], nl[:-1] + 1))
            rows = ~_blank(buf, starts, nl)
            done = 0  # lines of buf given to parts so far
            while done < len(nl):
                cum = np.cumsum(rows[done:])
                hit = np.searchsorted(cum, chunk_rows - part_rows)  # the line completing the chunk
                if hit >= len(cum):  # the chunk goes on past these lines
                    part_rows += int(cum[-1]) if len(cum) else 0
                    break
                end = pos + min(int(nl[done + hit]) + 1, len(buf))
                yield JsonlSpan(name, part_start, end - part_start, part_line, chunk_rows, keys)
                line_no += hit + 1
                done += hit + 1
                part_start, part_line, part_rows = end, line_no, 0
            line_no += len(nl) - done
            cut = min(int(nl[-1]) + 1, len(buf))
            pos += cut
            if at_end:
                break
            buf, at_end = windows.send(cut)
        windows.close()
    if part_rows:  # blank lines after the last full chunk are no chunk
        yield JsonlSpan(name, part_start, pos - part_start, part_line, part_rows, keys)
