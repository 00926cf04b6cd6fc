"""The text reader's fast path: polars reads a whole plain file itself (memory-mapped, parsed on
every core, batches in file order), so no Python code touches the bytes of a regular row.

polars is told never to fail: a bad number reads as null, fields past the vector land in a spare
``tail`` column, bad UTF-8 becomes U+FFFD, a short row is padded with nulls. That matters because
when polars raises part-way, batches it already gave may come from later in the file (seen with
polars 2.1). With nothing raising, every line is one row in file order (a blank line is a row of
nulls), so row ``i`` of the stream is line ``i`` of the file, and a row that carries one of those
marks is simply re-read from the file's bytes by the exact path (text.TextSource).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ._engines import NeedExact, polars_schema

__all__ = ["StreamFailed", "polars_rows", "polars_words"]


class StreamFailed(Exception):
    """polars raised after it had handed out batches."""


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
    bad |= word.str.len_bytes().fill_null(0).to_numpy() == 0
    bad |= word.str.contains("\ufffd", literal=True).fill_null(False).to_numpy()
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
