"""The text reader's fast path: polars reads a whole plain file itself (memory-mapped, parsed on
every core, batches in file order), so no Python code touches the bytes of a regular row.

polars is told never to fail: a bad number reads as null, fields past the vector land in a spare
``tail`` column, bad UTF-8 becomes U+FFFD, a short row is padded with nulls. That matters because
when polars raises part-way, batches it already gave may come from later in the file (seen with
polars 2.1). With nothing raising, every line is one row in file order (a blank line is a row of
nulls), so row ``i`` of the stream is line ``i`` of the file, and a row that carries one of those
marks is simply re-read from the file's bytes by the exact path (text.TextSource).

StreamedText is that path as TextSource's methods (a mixin), so text.py keeps the piece path and
the exact parser, and this module everything that depends on polars reading the file itself.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metaprep.errors import FormatError
from metaprep.prep.readers._io import LineCursor, Progress
from metaprep.prep.readers.base import Chunk, ReadOptions, ReadStats
from metaprep.prep.readers.text_block import NeedExact, polars_schema

__all__ = ["StreamFailed", "StreamedText", "polars_rows", "polars_words"]


class StreamFailed(Exception):
    """polars raised after it had handed out batches."""


_MAX_WORD_BYTES = 1 << 16
Rows = tuple[list[str], np.ndarray, np.ndarray]
Words = tuple[list[str], np.ndarray]


def _frames(path: str, dim: int, *, skip_rows: int, batch_rows: int,
            columns: list[str] | None = None) -> Iterator[Any]:
    """polars' batches of the file (only ``columns``, when given). Raises NeedExact if polars
    fails before the first batch, StreamFailed after it."""
    import polars as pl

    failures = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError)
    try:
        lazy = pl.scan_csv(
            path, has_header=False, separator=" ", quote_char=None, glob=False,
            schema=polars_schema(dim, True), null_values=None, skip_rows=skip_rows,
            ignore_errors=True, truncate_ragged_lines=True, encoding="utf8-lossy",
            missing_columns="insert",
        )
        frames = (lazy.select(columns) if columns else lazy).collect_batches(chunk_size=batch_rows)
    except failures as exc:
        raise NeedExact from exc
    given = False
    while True:
        try:
            df = next(frames)
        except StopIteration:
            return
        except failures as exc:
            if given:
                raise StreamFailed(str(exc)) from exc
            raise NeedExact from exc
        given = True
        yield df


def _bad_rows(word: Any, last: Any, tail: Any) -> np.ndarray:
    """Rows that are not a plain ``word n1 ... n_dim`` line as far as the word column, the last
    number's column and the spare ``tail`` column tell: no word or an empty one (a blank line, a
    leading space), bad UTF-8, a short row, or fields past the vector (a word with spaces)."""
    bad = word.is_null().to_numpy() | last.is_null().to_numpy()
    size = word.str.len_bytes().fill_null(0).to_numpy()
    bad |= (size == 0) | (size > _MAX_WORD_BYTES)  # a huge "word": the exact path bounds it
    bad |= word.str.contains("\ufffd", literal=True).fill_null(False).to_numpy()
    bad |= word.str.contains("\r", literal=True).fill_null(False).to_numpy()  # exact refuses
    bad |= tail.is_not_null().to_numpy()
    return np.asarray(bad, dtype=bool)


def polars_rows(path: str, dim: int, *, skip_rows: int, batch_rows: int) -> Iterator[Rows]:
    """``(words, vectors, bad)`` per batch of lines: every line one row; ``bad`` (bool) marks the
    rows that are not a plain ``word n1 ... n_dim`` line, whose words and vectors are junk."""
    import polars as pl

    for df in _frames(path, dim, skip_rows=skip_rows, batch_rows=batch_rows):
        # Columns are taken as Series: dropping or selecting on a 300-column frame costs more
        # than the copy into numpy.
        cols = df.get_columns()
        vectors = pl.DataFrame(cols[1:-1]).to_numpy(order="c")  # a null number reads as NaN
        bad = _bad_rows(cols[0], cols[-2], cols[-1]) | ~np.isfinite(vectors).all(axis=1)
        yield cols[0].to_list(), np.ascontiguousarray(vectors, dtype=np.float32), bad


def polars_words(path: str, dim: int, *, skip_rows: int, batch_rows: int) -> Iterator[Words]:
    """``(words, bad)`` per batch of lines, polars parsing only the word and the last two
    columns; ``bad`` as in polars_rows, except that the numbers between are not checked (the
    word pass never validates values)."""
    cols = ["w", f"v{dim - 1}", "tail"]
    for df in _frames(path, dim, skip_rows=skip_rows, batch_rows=batch_rows, columns=cols):
        word, last, tail = df.get_columns()
        yield word.to_list(), _bad_rows(word, last, tail)


class StreamedText:
    """The streamed path of text.TextSource, which mixes it in: the whole file through
    polars_rows / polars_words, the odd rows re-read through TextSource's exact path."""

    # provided by TextSource
    path: Path
    dim: int
    has_header: bool
    options: ReadOptions
    stats: ReadStats
    _data_start: int
    _first_line: int
    _gzipped: bool
    _line_bytes: float  # mean bytes per line, from the sniffed first rows
    _max_line: int  # a longer line is a FormatError (TextLayout.max_line)
    _cursor: LineCursor | None

    def _exact(self, lines: Sequence[bytes], line_nos: Sequence[int]
               ) -> tuple[list[str], np.ndarray, list[int]]:
        raise NotImplementedError

    def _line_words(self, lines: Sequence[bytes], line_nos: Sequence[int]) -> list[str]:
        raise NotImplementedError

    def _dedupe(self, words: list[str], seen: set[str]) -> list[int] | None:
        raise NotImplementedError

    def _streamable(self) -> bool:
        """Whether polars may read the file itself: a plain file read whole (gzip and
        ``limit`` take the piece path)."""
        return self.options.limit is None and not self._gzipped and self.dim > 0

    def _rows_estimate(self) -> float:
        return max(0, self.path.stat().st_size - self._data_start) / self._line_bytes

    def _polars_batches(self, reader: Any) -> Iterator[tuple[Any, int]]:
        """``(batch, first)`` from a text_stream reader over the whole file, ``first`` the
        batch's first line (0-based, after the header); progress and clean-up included. Raises
        NeedExact when polars could not start on the file."""
        size = self.path.stat().st_size
        line_bytes = self._line_bytes
        bar = Progress(total=size, desc=self.path.name, enabled=self.options.progress)
        batches = reader(str(self.path), self.dim, skip_rows=1 if self.has_header else 0,
                         batch_rows=max(1, int(self.options.chunk_bytes / line_bytes)))
        done = 0
        try:
            for batch in batches:
                yield batch, done
                done += len(batch[-1])  # every reader's last item is the per-row ``bad`` mask
                bar.update(min(size, self._data_start + int(done * line_bytes)),
                           self.stats.rows_read)
            bar.update(size, self.stats.rows_read)  # the position above is an estimate
        except StreamFailed as exc:
            raise FormatError(
                f"polars failed part-way through the file ({exc})", path=self.path,
                hint="the file may have changed while it was read; otherwise please report it",
            ) from exc
        finally:
            batches.close()
            if self._cursor is not None:
                self._cursor.close()
                self._cursor = None
            bar.close()

    def _odd_lines(self, first: int, bad: np.ndarray) -> tuple[np.ndarray, list[bytes], list[int]]:
        """The ``bad`` rows of a batch starting at line ``first``: their indices, raw bytes
        (read from the file) and line numbers."""
        if self._cursor is None:
            self._cursor = LineCursor(self.path, self._data_start, max_line=self._max_line,
                                      first_line=self._first_line)
        odd = np.flatnonzero(bad)
        raw = [self._cursor.line(first + int(i)) for i in odd]
        return odd, raw, [self._first_line + first + int(i) for i in odd]

    def _stream(
        self, seen: set[str], wanted: Collection[str] | None
    ) -> Generator[Chunk, None, bool]:
        """The whole file through polars' own reader, batch by batch, the irregular rows
        re-read by the exact path; filtered to ``wanted`` (TextSource streams only when enough
        of the rows are wanted). False when polars could not start, True when the file was
        read."""
        try:
            for (words, vectors, bad), first in self._polars_batches(polars_rows):
                if bad.any():
                    words, vectors, rows = self._mend(words, vectors, bad, first)
                else:
                    rows = len(words)
                self.stats.rows_read += rows
                if wanted is not None:
                    mask = np.fromiter((w in wanted for w in words), bool, len(words))
                    words = [w for w, m in zip(words, mask, strict=True) if m]
                    vectors = vectors[mask]
                keep = self._dedupe(words, seen)
                if keep is not None:
                    words, vectors = [words[i] for i in keep], vectors[keep]
                if words:
                    yield Chunk(words, vectors)
        except NeedExact:
            return False
        return True

    def _mend(
        self, words: list[str], vectors: np.ndarray, bad: np.ndarray, first: int
    ) -> tuple[list[str], np.ndarray, int]:
        """A batch whose ``bad`` rows (junk as polars read them) are re-read from the file by
        the exact path: the words, vectors and row count in file order (blank lines dropped,
        bad lines skipped or raised as the options say)."""
        odd, raw, line_nos = self._odd_lines(first, bad)
        ex_words, ex_vectors, kept = self._exact(raw, line_nos)
        good = np.flatnonzero(~bad)
        where = np.concatenate([good, odd[np.asarray(kept, dtype=np.intp)]])
        order = np.argsort(where, kind="stable")
        merged = [words[i] for i in good] + ex_words
        rows = len(good) + sum(1 for r in raw if r.strip())
        return [merged[j] for j in order], np.concatenate([vectors[good], ex_vectors])[order], rows

    def _stream_words(self, seen: set[str]) -> Generator[list[str], None, bool]:
        """iter_words through polars, which then parses only the word and last two columns
        (about 2x faster than finding each line's word in Python)."""
        try:
            for (words, bad), first in self._polars_batches(polars_words):
                if bad.any():
                    odd, raw, line_nos = self._odd_lines(first, bad)
                    fixed = dict(zip(odd.tolist(), [self._line_words([r], [n])
                                                    for r, n in zip(raw, line_nos, strict=True)],
                                     strict=True))
                    self.stats.rows_read += len(words) - len(odd)
                    words = [w for i, row in enumerate(words)
                             for w in (fixed[i] if i in fixed else (row,))]
                else:
                    self.stats.rows_read += len(words)
                keep = self._dedupe(words, seen)
                if keep is not None:
                    words = [words[i] for i in keep]
                if words:
                    yield words
        except NeedExact:
            return False
        return True
