"""A block of regular text rows (``word n1 n2 ... n_dim``, optionally a trailing space, CR/LF or
LF line ends, blank lines allowed) parsed by polars in one call: the piece path of text.py.

polars is told the exact column types (the word a string, the numbers float32) with quoting,
comments and null markers switched off, so ``NaN``, ``null``, ``"x,`` or ``#x`` stay words. It
raises NeedExact whenever a block is not entirely regular (a word with spaces, a wrong field
count, a non-numeric, NaN or infinite value, bad UTF-8, an empty word); the reader then re-reads
that block line by line, which is exact and finds the line for error messages.

polars is the only CSV engine: pyarrow and pandas were measured 1.3-3.5x slower on the same files
(benchmarks/results/readers.md) and were removed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NeedExact", "parse_block", "polars_schema"]


class NeedExact(Exception):
    """This block is not entirely regular; parse it line by line instead."""


def _has_tail(buf: bytes) -> bool:
    """Whether rows end with a space (fastText .vec), judged on the first row."""
    nl = buf.find(b"\n")
    first = buf[: nl if nl >= 0 else len(buf)]
    if first.endswith(b"\r"):
        first = first[:-1]
    return first.endswith(b" ")


Parsed = tuple[list[str], np.ndarray, int]

_POLARS_SCHEMAS: dict[tuple[int, bool], dict[str, Any]] = {}


def polars_schema(dim: int, tail: bool) -> dict[str, Any]:
    import polars as pl

    key = (dim, tail)
    if key not in _POLARS_SCHEMAS:
        schema: dict[str, Any] = {"w": pl.String}
        schema.update({f"v{j}": pl.Float32 for j in range(dim)})
        if tail:
            schema["tail"] = pl.String
        _POLARS_SCHEMAS[key] = schema
    return _POLARS_SCHEMAS[key]


def parse_block(buf: bytes, dim: int) -> Parsed:
    """``(words, (n, dim) float32 vectors, lines)`` of a block of regular rows, or raise
    NeedExact. ``lines`` counts the rows polars read, blank lines included."""
    import polars as pl

    if buf.startswith(b" "):  # an empty or space-led first word: the exact path decides
        raise NeedExact
    tail = _has_tail(buf)
    try:
        df = pl.read_csv(
            buf, has_header=False, separator=" ", quote_char=None,
            schema=polars_schema(dim, tail), null_values=None,
        )
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as exc:
        raise NeedExact from exc
    return _polars_frame(df, tail=tail)


def _polars_frame(df: Any, *, tail: bool) -> Parsed:
    """``(words, vectors, lines)`` of a frame polars read with ``polars_schema``, or raise
    NeedExact when a row is irregular."""
    import polars as pl

    # Columns are taken as Series: dropping or selecting on a 300-column frame costs more than
    # the copy into numpy.
    cols = df.get_columns()
    if tail:
        if cols[-1].null_count() != df.height:  # an extra number hid in the tail column
            raise NeedExact
        cols = cols[:-1]
    lines = df.height  # blank lines read as rows of nulls, so this counts every line
    if cols[0].null_count():
        # a blank line reads as a row of nulls; drop those, anything else is irregular
        frame = pl.DataFrame(cols)
        frame = frame.filter(~pl.all_horizontal(pl.all().is_null()))
        if any(frame.null_count().row(0)):
            raise NeedExact
        cols = frame.get_columns()
    # A null number (a short row) becomes NaN in to_numpy, which the check below refuses.
    words: list[str] = cols[0].to_list()
    vectors = np.ascontiguousarray(pl.DataFrame(cols[1:]).to_numpy(order="c"), dtype=np.float32)
    if "" in words or not np.isfinite(vectors).all() or any("\r" in w for w in words):
        raise NeedExact
    return words, vectors, lines
