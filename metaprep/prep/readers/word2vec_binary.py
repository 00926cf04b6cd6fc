"""word2vec binary: a text header ``count dim\\n``, then per row the word's UTF-8 bytes, one space
and ``dim`` little-endian float32s. Google's original writer puts a newline after every vector,
gensim's does not; both are read (newlines before a word are skipped).

Plain files are memory-mapped: the scan finds each word with ``find(b" ")`` and jumps ``4*dim``
bytes to the next, so a vector that is not wanted (or a duplicate) is never copied or converted.
Wanted vectors are gathered with one join per chunk. gzip files are decompressed in blocks.
"""

from __future__ import annotations

import mmap
from collections.abc import Collection, Generator, Iterator
from pathlib import Path

import numpy as np

from metaprep.errors import FormatError
from metaprep.prep.readers._io import (
    HINT_REPLACE,
    HINT_SKIP,
    OpenedFile,
    Progress,
    check_options,
    note_bad_line,
    open_binary,
)
from metaprep.prep.readers.base import Chunk, ReadOptions, ReadStats, Source
from metaprep.prep.readers.text_layout import header_problem, parse_header

__all__ = ["Word2VecBinarySource"]

_ROWS_PER_CHUNK_BYTES = 8 << 20  # vector bytes per Chunk (small enough for malloc to reuse)
_MAX_WORD_BYTES = 1 << 16  # a longer "word" means the file is not what the header says
_Window = tuple["bytes | mmap.mmap", int, int, bool, int]


def _release(mm: mmap.mmap, done: int, upto: int) -> int:
    """Unmap pages already scanned: they would otherwise count in the process's RSS until the
    map closes (the whole file, for a full scan). They stay in the page cache, and a pending
    view into them simply faults them back in."""
    upto -= upto % mmap.PAGESIZE
    if upto > done and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED, done, upto - done)
        return upto
    return done


class Word2VecBinarySource(Source):
    """A word2vec binary file (optionally gzip-compressed)."""

    format = "word2vec-binary"

    def __init__(self, path: str | Path, *, options: ReadOptions | None = None) -> None:
        self.path = Path(path)
        self.options = check_options(options or ReadOptions())
        self.stats = ReadStats()
        f = open_binary(self.path)
        try:
            head = f.read(4096)
            size = None if f.gzipped else f.size
        finally:
            f.close()
        if not head:
            raise FormatError("the file is empty", path=self.path, hint="check the download")
        nl = head.find(b"\n")
        header = parse_header(head[:nl]) if nl > 0 else None
        if header is None:
            raise FormatError(
                "expected a 'count dim' header line for word2vec binary",
                path=self.path, line=1,
                hint="for a text file use --format NAME=glove / fmt='glove'",
            )
        self.declared_count: int = header[0]
        self.dim = header[1]
        self._data_start = nl + 1
        problem = header_problem(*header)
        if problem:
            raise FormatError(problem, path=self.path, line=1,
                              hint="the header is corrupt: fix the header line")
        if not head[nl + 1 :].strip(b"\n") and len(head) < 4096:
            raise FormatError(
                "the file has a header line but no vectors", path=self.path,
                hint="check the download",
            )
        self._check_size(size)

    def _check_size(self, size: int | None) -> None:
        """A row takes at least 4*dim + 2 bytes (a 1-byte word and its space): a plain file
        too small for the rows to be read is refused before any is."""
        rows = self.declared_count
        if self.options.limit is not None:
            rows = min(rows, self.options.limit)
        need = rows * (4 * self.dim + 2)
        if size is not None and need > size - self._data_start:
            raise FormatError(
                f"the header declares {self.declared_count:,} rows of {self.dim} dimensions, "
                f"which take at least {need:,} bytes, but the file has "
                f"{size - self._data_start:,} after the header",
                path=self.path, line=1,
                hint="the file is truncated (download it again) or its header is wrong",
            )

    # --- the Source contract -------------------------------------------------------------------
    def iter_chunks(self, wanted: Collection[str] | None = None) -> Iterator[Chunk]:
        yield from self._scan(wanted, vectors=True)

    def iter_words(self) -> Iterator[list[str]]:
        for chunk in self._scan(None, vectors=False):
            yield chunk.words

    # --- scanning ------------------------------------------------------------------------------
    def _windows(self, f: OpenedFile) -> Generator[_Window, int, None]:
        """Buffers to scan, as ``(buffer, start, end, at_eof, base)``; ``base`` is the buffer's
        offset in the (decompressed) file, for error messages. A plain file is one memory map;
        a gzip file comes in blocks, and the caller sends back how far it got in each."""
        if not f.gzipped:
            try:
                mm = mmap.mmap(f.raw.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as exc:
                raise FormatError(f"cannot map the file: {exc}", path=self.path) from exc
            try:
                yield mm, self._data_start, f.size, True, 0
            finally:
                mm.close()
            return
        base = len(f.read(self._data_start))
        carry = b""
        block_size = max(self.options.chunk_bytes, 8 * self.dim + _MAX_WORD_BYTES)
        while True:
            block = f.read(block_size)
            buf = carry + block if carry else block
            eof = not block
            used = yield buf, 0, len(buf), eof, base
            if eof:
                return
            carry = buf[used:]
            base += used

    def _scan(self, wanted: Collection[str] | None, *, vectors: bool) -> Iterator[Chunk]:
        # One long function on purpose: the per-row loop is the reader's hot path (1.5 GB/s with
        # a target vocabulary); a call per row, or locals re-fetched from self, cost measurably.
        self.stats = stats = ReadStats()
        dim, rec = self.dim, 4 * self.dim
        count = self.declared_count
        limit = self.options.limit
        stop = count if limit is None else min(count, limit)
        errors = "strict" if self.options.encoding_errors == "strict" else "replace"
        seen: set[str] = set()
        batch = max(1, _ROWS_PER_CHUNK_BYTES // rec)
        words: list[str] = []
        slices: list[memoryview] = []
        offsets: list[int] = []
        f = open_binary(self.path)
        bar = Progress(total=f.size, desc=self.path.name, enabled=self.options.progress)
        windows = self._windows(f)
        view: memoryview | None = None
        try:
            buf, pos, end, eof, base = next(windows)
            view = memoryview(buf)
            rows = 0
            released = 0  # mapped bytes handed back to the page cache (see _release)
            while True:
                find = buf.find
                while rows < stop:
                    sp = find(b" ", pos, end)
                    nxt = sp + 1 + rec
                    if sp < 0 or nxt > end:
                        if (sp < 0 and end - pos > _MAX_WORD_BYTES) or sp - pos > _MAX_WORD_BYTES:
                            self._corrupt(base + pos, "no word separator found")
                        break  # the record continues in the next window
                    raw = buf[pos:sp]
                    if raw.startswith(b"\n"):  # the newline some writers put after a vector
                        raw = raw.lstrip(b"\n")
                    if b"\n" in raw or len(raw) > _MAX_WORD_BYTES:
                        self._corrupt(base + pos, "a word contains a newline or is too long")
                    rows += 1
                    try:
                        word = raw.decode("utf-8", errors)
                    except UnicodeDecodeError as exc:
                        stats.rows_read = rows
                        at = base + sp - len(raw) + exc.start
                        self._bad(at, f"the word of row {rows} is not valid UTF-8", True)
                        pos = nxt
                        continue
                    if not word:
                        stats.rows_read = rows
                        self._bad(base + pos, f"row {rows} has an empty word", False)
                        pos = nxt
                        continue
                    if word in seen:
                        stats.duplicates += 1
                    elif wanted is None or word in wanted:
                        seen.add(word)
                        words.append(word)
                        if vectors:
                            slices.append(view[sp + 1 : nxt])
                            offsets.append(base + sp + 1)
                        if len(words) >= batch:
                            stats.rows_read = rows
                            yield self._chunk(words, slices, offsets, seen, vectors, dim)
                            words, slices, offsets = [], [], []
                    pos = nxt
                    if not rows & 0xFFFF:
                        bar.update(f.position() if f.gzipped else base + pos, rows)
                        if isinstance(buf, mmap.mmap):
                            released = _release(buf, released, pos)
                stats.rows_read = rows
                if rows >= stop or eof:
                    break
                view.release()
                buf, pos, end, eof, base = windows.send(pos)
                view = memoryview(buf)
            if words:
                yield self._chunk(words, slices, offsets, seen, vectors, dim)
            self._check_end(buf, pos, end, eof, base, stop)
        finally:
            # the memory map cannot close while views into it exist
            slices.clear()
            if view is not None:
                view.release()
            windows.close()
            bar.close()
            f.close()

    def _chunk(
        self, words: list[str], slices: list[memoryview], offsets: list[int], seen: set[str],
        vectors: bool, dim: int,
    ) -> Chunk:
        if not vectors:
            return Chunk(words, np.zeros((0, dim), np.float32))
        matrix = np.frombuffer(b"".join(slices), dtype="<f4").reshape(len(words), dim)
        matrix = matrix.astype(np.float32, copy=False)
        ok = np.isfinite(matrix).all(axis=1)
        if ok.all():
            return Chunk(words, matrix)
        bad = np.flatnonzero(~ok)
        for i in bad:
            k = int(np.argmin(np.isfinite(matrix[i])))
            reason = f"value {k + 1} of the vector of {words[i]!r} is {matrix[i, k]} (not finite)"
            if self.options.on_bad_line == "error":
                raise FormatError(
                    reason, path=self.path, offset=offsets[i] + 4 * k,
                    hint="the header's dimension may be wrong; " + HINT_SKIP,
                )
            note_bad_line(self.stats, f"byte {offsets[i] + 4 * k}", reason)
            seen.discard(words[i])
        keep = np.flatnonzero(ok)
        return Chunk([words[i] for i in keep], matrix[keep])

    def _bad(self, offset: int, reason: str, encoding: bool) -> None:
        if self.options.on_bad_line == "error":
            hint = f"{HINT_REPLACE}, {HINT_SKIP}" if encoding else HINT_SKIP.removeprefix("or ")
            raise FormatError(reason, path=self.path, offset=offset, hint=hint)
        note_bad_line(self.stats, f"byte {offset}", reason)

    def _corrupt(self, offset: int, what: str) -> None:
        raise FormatError(
            f"{what}: the data does not match word2vec binary with the header's {self.dim} "
            "dimensions",
            path=self.path, offset=offset,
            hint="check that the header is right and that the file is binary, not text",
        )

    def _check_end(
        self, buf: bytes | mmap.mmap, pos: int, end: int, eof: bool, base: int, stop: int
    ) -> None:
        rows = self.stats.rows_read
        if self.options.limit is not None and rows >= stop:
            return
        if rows < self.declared_count:
            rest = bytes(buf[pos:end]).strip(b"\n")
            raise FormatError(
                f"the file ends after {rows} of the {self.declared_count} rows the header declares"
                + (f" (the last {len(rest)} bytes are a partial row)" if rest else ""),
                path=self.path, offset=base + pos,
                hint="the file is truncated: download it again",
            )
        tail = bytes(buf[pos : min(end, pos + 64)]).strip(b"\n\r ")
        if tail:
            raise FormatError(
                f"data continues after the {self.declared_count} rows the header declares",
                path=self.path, offset=base + pos,
                hint="fix the header's first number",
            )
