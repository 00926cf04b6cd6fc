"""Fast parsers for blocks of regular text rows: ``word n1 n2 ... n_dim`` (optionally a trailing
space), CR/LF or LF line ends, blank lines allowed.

Each engine is a CSV reader told the exact column types (the word a string, the numbers float32)
with quoting, comments and null markers switched off, so ``NaN``, ``null``, ``"x,`` or ``#x`` stay
words. An engine raises NeedExact whenever a block is not entirely regular (a word with spaces,
a wrong field count, a non-numeric, NaN or infinite value, bad UTF-8, an empty word); the reader
then re-reads that block line by line, which is exact and finds the line for error messages.

polars is the default: it was the fastest of the three on our benchmark
(benchmarks/bench_readers.py prints all three side by side).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ENGINES", "NeedExact", "parse_block", "polars_schema"]

ENGINES = ("polars", "pyarrow", "pandas")


class NeedExact(Exception):
    """This block is not entirely regular; parse it line by line instead."""


def _has_tail(buf: bytes) -> bool:
    """Whether rows end with a space (fastText .vec), judged on the first row."""
    nl = buf.find(b"\n")
    first = buf[: nl if nl >= 0 else len(buf)]
    if first.endswith(b"\r"):
        first = first[:-1]
    return first.endswith(b" ")


Parsed = tuple[list[str], np.ndarray, "int | None"]


def _finish(words: list[str], vectors: np.ndarray, lines: int | None = None) -> Parsed:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if "" in words or not np.isfinite(vectors).all() or any("\r" in w for w in words):
        raise NeedExact
    return words, vectors, lines


# --- polars --------------------------------------------------------------------------------------
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


def _parse_polars(buf: bytes, dim: int) -> Parsed:
    import polars as pl

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
    # A null number (a short row) becomes NaN in to_numpy, which _finish refuses.
    words: list[str] = cols[0].to_list()
    return _finish(words, pl.DataFrame(cols[1:]).to_numpy(order="c"), lines)


# --- pyarrow -------------------------------------------------------------------------------------
_ARROW_OPTIONS: dict[tuple[int, bool], tuple[object, object, object]] = {}


def _parse_pyarrow(buf: bytes, dim: int) -> Parsed:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    tail = _has_tail(buf)
    key = (dim, tail)
    if key not in _ARROW_OPTIONS:
        names = ["w"] + [f"v{j}" for j in range(dim)] + (["tail"] if tail else [])
        types = {n: pa.float32() for n in names[1 : dim + 1]}
        types["w"] = pa.string()
        if tail:
            types["tail"] = pa.string()
        _ARROW_OPTIONS[key] = (
            pacsv.ReadOptions(column_names=names, block_size=16 << 20),
            pacsv.ParseOptions(delimiter=" ", quote_char=False, escape_char=False),
            pacsv.ConvertOptions(column_types=types, null_values=[], strings_can_be_null=False),
        )
    read_opts, parse_opts, convert_opts = _ARROW_OPTIONS[key]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(buf), read_options=read_opts, parse_options=parse_opts,
            convert_options=convert_opts,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise NeedExact from exc
    if tail:
        if table.num_rows and not pc.all(pc.equal(table.column("tail"), "")).as_py():
            raise NeedExact
        table = table.drop_columns(["tail"])
    words: list[str] = table.column("w").to_pylist()
    batches = [b.to_tensor(row_major=True) for b in table.drop_columns(["w"]).to_batches()]
    parts = [np.asarray(t) for t in batches]
    if not parts:
        return _finish(words, np.zeros((0, dim), np.float32))
    return _finish(words, np.concatenate(parts) if len(parts) > 1 else parts[0])


# --- pandas --------------------------------------------------------------------------------------
def _parse_pandas(buf: bytes, dim: int) -> Parsed:
    import csv

    import pandas as pd

    tail = _has_tail(buf)
    dtypes: dict[int, object] = {0: str, **{j: np.float32 for j in range(1, dim + 1)}}
    if tail:
        dtypes[dim + 1] = str
    try:
        df = pd.read_csv(
            io.BytesIO(buf), sep=" ", header=None, quoting=csv.QUOTE_NONE, dtype=dtypes,
            na_filter=False, engine="c", encoding="utf-8", names=list(dtypes), index_col=False,
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise NeedExact from exc
    if tail:
        if len(df) and not (df[dim + 1] == "").all():
            raise NeedExact
    words: list[str] = df[0].tolist()
    return _finish(words, df.iloc[:, 1 : dim + 1].to_numpy(dtype=np.float32))


_PARSERS: dict[str, Callable[[bytes, int], Parsed]] = {
    "polars": _parse_polars,
    "pyarrow": _parse_pyarrow,
    "pandas": _parse_pandas,
}


def parse_block(buf: bytes, dim: int, *, engine: str = "polars") -> Parsed:
    """``(words, (n, dim) float32 vectors, lines)`` of a block of regular rows, or raise
    NeedExact. ``lines`` counts the block's lines (blank ones included) when the engine knows
    it, else None."""
    if buf.startswith(b" "):  # pandas drops a leading space on the first row: never guess
        raise NeedExact
    return _PARSERS[engine](buf, dim)
