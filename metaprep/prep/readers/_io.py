"""Byte-level helpers shared by the readers: opening (with transparent gzip), line-aligned chunks,
progress bars, and turning OS errors into FormatError."""

from __future__ import annotations

import gzip
import mmap
import os
import sys
import time
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any

from metaprep.errors import ConfigError, FormatError
from metaprep.prep.readers.base import ReadOptions, ReadStats

__all__ = [
    "GZIP_MAGIC",
    "HINT_REPLACE",
    "HINT_SKIP",
    "LineCursor",
    "LineTooLong",
    "MAX_EXAMPLES",
    "OpenedFile",
    "Progress",
    "check_options",
    "is_gzip",
    "line_chunks",
    "note_bad_line",
    "open_binary",
    "too_long",
]

GZIP_MAGIC = b"\x1f\x8b"
# What to do about a bad row, in the words of the CLI and of the Python API.
HINT_SKIP = "or skip such rows: --on-bad-line skip / ReadOptions(on_bad_line='skip')"
HINT_REPLACE = (
    "to substitute U+FFFD: --encoding-errors replace / ReadOptions(encoding_errors='replace')"
)
MAX_EXAMPLES = 5  # how many "line N: reason" examples stats.examples keeps


class LineTooLong(Exception):
    """A line runs past the reader's bound (TextLayout.max_line) without a newline: the caller,
    which knows the line's number, turns this into a FormatError."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a line is longer than {limit:,} bytes")
        self.limit = limit


def too_long(path: Path, line: int, limit: int) -> FormatError:
    return FormatError(
        f"the line is longer than {limit:,} bytes (64 times the usual line, at least 1 MiB)",
        path=path, line=line, hint="the file is corrupt, or not an embedding file",
    )


def _check_path(path: Path) -> None:
    if not path.exists():
        raise FormatError("no such file", path=path, hint="check the path")
    if path.is_dir():
        raise FormatError("is a directory, not an embedding file", path=path)


def is_gzip(path: Path) -> bool:
    _check_path(path)
    try:
        with open(path, "rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError as exc:
        raise FormatError(f"cannot read: {exc.strerror or exc}", path=path) from exc


class OpenedFile:
    """A readable byte stream plus the raw file under it (for byte-position progress)."""

    def __init__(self, path: Path) -> None:
        _check_path(path)
        try:
            self.raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise FormatError(f"cannot open: {exc.strerror or exc}", path=path) from exc
        self.size = os.fstat(self.raw.fileno()).st_size
        self.gzipped = self.raw.read(2) == GZIP_MAGIC
        self.raw.seek(0)
        self.stream: IO[bytes] = self.raw
        if self.gzipped:
            self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb")  # type: ignore[assignment]
        self.path = path
        self.mapped_pos: int | None = None  # set while a plain file is read through mmap

    def read(self, n: int = -1) -> bytes:
        try:
            return self.stream.read(n)
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise FormatError(
                f"cannot read ({'corrupt or truncated gzip data: ' if self.gzipped else ''}"
                f"{exc})",
                path=self.path,
                offset=self.position(),
            ) from exc

    def position(self) -> int:
        """Bytes consumed from the file on disk (compressed bytes for .gz)."""
        if self.mapped_pos is not None:
            return self.mapped_pos
        try:
            return self.raw.tell()
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self.stream is not self.raw:
            self.stream.close()
        self.raw.close()


def open_binary(path: Path) -> OpenedFile:
    """Open ``path`` for reading, decompressing gzip transparently (detected by magic bytes)."""
    return OpenedFile(path)


class Progress:
    """A tqdm byte bar on stderr (rows/s in the postfix), or nothing when disabled."""

    def __init__(self, *, total: int, desc: str, enabled: bool) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                file=sys.stderr, leave=False, dynamic_ncols=True,
            )
        self._last = 0
        self._start = time.monotonic()

    def update(self, position: int, rows: int) -> None:
        if self._bar is None:
            return
        self._bar.update(max(0, position - self._last))
        self._last = position
        rate = rows / max(1e-9, time.monotonic() - self._start)
        self._bar.set_postfix_str(f"{rows:,} rows, {rate:,.0f} rows/s", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def line_chunks(
    f: OpenedFile, *, chunk_bytes: int, start: int = 0, max_line: int | None = None
) -> Generator[bytes, None, None]:
    """Yield pieces of about ``chunk_bytes`` that end at a newline (the last may lack one),
    beginning at byte ``start`` of the (decompressed) content.

    A line longer than ``chunk_bytes`` makes its piece longer, up to ``max_line`` bytes
    (LineTooLong beyond), so memory stays bounded by the chunk size plus that bound even for a
    gzip bomb. Plain files are memory-mapped so each piece costs one copy.
    """
    limit = max_line or (1 << 62)
    if f.gzipped:
        yield from _stream_chunks(f, chunk_bytes, start, limit)
    else:
        yield from _mapped_chunks(f, chunk_bytes, start, limit)


def _mapped_chunks(f: OpenedFile, chunk_bytes: int, start: int, limit: int) -> Iterator[bytes]:
    size = f.size
    if size <= start:
        return
    try:
        mm = mmap.mmap(f.raw.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as exc:
        raise FormatError(f"cannot map the file: {exc}", path=f.path) from exc
    try:
        pos = start
        while pos < size:
            end = pos + chunk_bytes
            if end >= size:
                end = size
            else:
                nl = mm.rfind(b"\n", pos, end)
                if nl < 0:  # a line longer than the chunk
                    nl = mm.find(b"\n", end, pos + limit + 1)
                    if nl < 0 and size - pos > limit:
                        raise LineTooLong(limit)
                end = size if nl < 0 else nl + 1
            piece = mm[pos:end]
            pos = f.mapped_pos = end
            yield piece
            # Pages already copied out would otherwise stay mapped and count in our RSS until
            # the file is closed (the whole file, for a full scan); they stay in the page cache.
            done = pos - pos % mmap.PAGESIZE
            if done and hasattr(mmap, "MADV_DONTNEED"):
                mm.madvise(mmap.MADV_DONTNEED, 0, done)
    finally:
        mm.close()


class LineCursor:
    """The raw bytes of given lines of a plain file (``\\n`` excluded), for line numbers asked
    in increasing order: each call scans forward from the last one, so reaching every line of
    the file costs one pass over it."""

    def __init__(
        self, path: Path, start: int, *, max_line: int | None = None, first_line: int = 1
    ) -> None:
        # a line longer than max_line is a FormatError naming it (first_line: line 0's number)
        self._path, self._max_line, self._first_line = path, max_line, first_line
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._size = os.fstat(self._f.fileno()).st_size
        self._mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ) if self._size else None
        self._line, self._pos = 0, start  # line 0 starts at byte ``start``
        self._start = start

    def line(self, k: int) -> bytes:
        """Line ``k`` (counted from ``start``, 0-based; ``k`` at least the last one asked)."""
        import numpy as np

        if k < self._line:
            raise ValueError(f"line {k} is behind the cursor (line {self._line})")
        mm, size = self._mm, self._size
        if mm is None:
            return b""
        left, pos = k - self._line, self._pos
        # scan about as many bytes as ``left`` lines of the mean length seen so far take
        mean = (pos - self._start) / self._line if self._line else 4096.0
        while left > 0 and pos < size:
            n = min(size - pos, 64 << 20, max(1 << 16, int(left * mean * 1.25)))
            ends = np.flatnonzero(np.frombuffer(mm, np.uint8, n, pos) == 10)
            if len(ends) >= left:
                pos += int(ends[left - 1]) + 1
                left = 0
            else:
                left -= len(ends)
                pos += n
        self._line, self._pos = k, pos
        end = mm.find(b"\n", pos)
        end = size if end < 0 else end
        if self._max_line is not None and end - pos > self._max_line:
            raise too_long(self._path, self._first_line + k, self._max_line)
        return mm[pos:end]

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
        self._f.close()


def _stream_chunks(f: OpenedFile, chunk_bytes: int, start: int, limit: int) -> Iterator[bytes]:
    while start > 0:  # skip what the caller already looked at (header, BOM)
        skipped = f.read(min(start, chunk_bytes))
        if not skipped:
            return
        start -= len(skipped)
    carry = b""
    while True:
        block = f.read(chunk_bytes)
        if not block:
            if carry:
                yield carry
            return
        cut = block.rfind(b"\n") + 1
        if cut == 0:  # no newline yet: a line longer than the chunk, keep reading
            carry += block
            if len(carry) > limit:
                raise LineTooLong(limit)
            continue
        if carry or cut < len(block):
            piece = b"".join((carry, memoryview(block)[:cut]))
        else:
            piece = block
        carry = block[cut:]
        yield piece


def check_options(options: ReadOptions) -> ReadOptions:
    """The options every reader understands, checked once (a typo is a ConfigError)."""
    if options.on_bad_line not in ("error", "skip"):
        raise ConfigError(f"on_bad_line must be 'error' or 'skip', not {options.on_bad_line!r}")
    if options.encoding_errors not in ("strict", "replace"):
        raise ConfigError(
            f"encoding_errors must be 'strict' or 'replace', not {options.encoding_errors!r}"
        )
    if options.limit is not None and options.limit < 0:
        raise ConfigError(f"limit must be >= 0, not {options.limit}")
    if options.chunk_bytes < 1:
        raise ConfigError(f"chunk_bytes must be positive, not {options.chunk_bytes}")
    return options


def note_bad_line(stats: ReadStats, where: str, reason: str) -> None:
    stats.bad_lines += 1
    if len(stats.examples) < MAX_EXAMPLES:
        stats.examples.append(f"{where}: {reason}")
