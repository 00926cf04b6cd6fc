"""fastText .bin layout, checked field by field against the file's size before gensim reads it.

gensim's parser trusts the file: a truncated vocabulary makes it loop forever (it reads one byte
at a time until a NUL that never comes), absurd counts make it allocate or loop by them, and a
matrix of the wrong shape ends in an AssertionError. So the whole layout is walked here first,
over a memory map, every count bounded by the bytes left:

    [magic int32, version int32]        only in models from fastText 0.9 on (the "new" format)
    dim, ws (int32)                     in the old format these two take the magic's place
    epoch .. lr_update_rate (10 int32), t (float64)
    size, nwords, nlabels (int32), ntokens (int64), [pruneidx_size (int64)]
    size x (word bytes, NUL, count int64, type int8), [pruneidx_size x 2 int32]
    input matrix:  [quantized bool], rows int64, cols int64, rows x cols float32
    output matrix: the same (gensim skips it, but a model cut inside it is still truncated)

Native byte order is little-endian on every platform fastText ships for.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaprep.errors import FormatError
from metaprep.prep.readers.base import MAX_DIM

__all__ = ["FASTTEXT_MAGIC", "FastTextLayout", "check_fasttext_layout"]

FASTTEXT_MAGIC = 793712314
_MAX_WORD_BYTES = 1 << 16
_HINT = "download it again"
_BLOCK_FLOATS = 1 << 22  # floats checked per step (16 MiB)


@dataclass(frozen=True)
class FastTextLayout:
    dim: int
    nwords: int
    bucket: int
    matrix_offset: int  # byte offset of the input matrix's first float


class _Cursor:
    """Reads fields from a memory map, each read checked against the end of the file."""

    def __init__(self, path: Path, mm: mmap.mmap) -> None:
        self.path, self.mm, self.pos, self.size = path, mm, 0, len(mm)

    def fail(self, what: str, at: int | None = None) -> FormatError:
        return FormatError(f"the fastText model is truncated or corrupt: {what}", path=self.path,
                           offset=self.pos if at is None else at, hint=_HINT)

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"the file ends inside {what} ({n} bytes needed, "
                            f"{self.size - self.pos} left)")

    def unpack(self, fmt: str, what: str) -> tuple[int | float, ...]:
        n = struct.calcsize(fmt)
        self.need(n, what)
        out = struct.unpack_from(fmt, self.mm, self.pos)
        self.pos += n
        return out

    def integer(self, fmt: str, what: str, low: int, high: int) -> int:
        at = self.pos
        (value,) = self.unpack(fmt, what)
        if not isinstance(value, int) or not low <= value <= high:
            raise self.fail(f"{what} is {value}, expected {low}..{high}", at)
        return value


def check_fasttext_layout(path: Path) -> FastTextLayout:
    """Walk the whole model (header, dictionary, both matrices) and check that the input
    matrix holds finite numbers; a FormatError names the first field that does not fit."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _walk(_Cursor(path, mm))
    except (OSError, ValueError) as exc:  # ValueError: mmap of an empty file
        raise FormatError(f"cannot map the file: {exc}", path=path, hint=_HINT) from exc


def _walk(c: _Cursor) -> FastTextLayout:
    (first,) = c.unpack("<i", "the header")
    new = first == FASTTEXT_MAGIC
    if new:
        c.integer("<i", "the format version", 1, 100)
    else:
        c.pos = 0
    dim = c.integer("<i", "the dimension", 1, MAX_DIM)
    c.integer("<i", "the window size", 0, 1 << 20)
    for what in ("epoch", "min_count", "neg", "word_ngrams"):
        c.integer("<i", what, 0, 1 << 30)
    c.integer("<i", "the loss", 1, 4)
    c.integer("<i", "the model type", 1, 3)
    bucket = c.integer("<i", "the bucket count", 0, 2**31 - 1)
    minn = c.integer("<i", "minn", 0, 1000)
    c.integer("<i", "maxn", minn if bucket else 0, 1000)
    c.integer("<i", "lr_update_rate", -(2**31), 2**31 - 1)
    at = c.pos
    (t,) = c.unpack("<d", "the sampling threshold")
    if not (math.isfinite(t) and t >= 0):
        raise c.fail(f"the sampling threshold is {t}", at)
    nwords = _dictionary(c, new)
    offset = _matrix(c, new, "input", nwords + bucket, dim, check_values=True)
    if c.pos < c.size:  # gensim never reads the output matrix; fastText always writes it
        _matrix(c, new, "output", None, dim, check_values=False)
    if c.pos != c.size:
        raise c.fail(f"{c.size - c.pos} bytes follow the last matrix")
    return FastTextLayout(dim, nwords, bucket, offset)


def _dictionary(c: _Cursor, new: bool) -> int:
    left = c.size - c.pos
    size = c.integer("<i", "the dictionary size", 0, left // 10)  # an entry takes 10 bytes at least
    nwords = c.integer("<i", "the word count", 0, size)
    at = c.pos
    nlabels = c.integer("<i", "the label count", 0, size)
    if nlabels:
        raise FormatError(
            "cannot read this fastText model: Supervised (classifier) models are not supported",
            path=c.path, offset=at,
            hint="export its word vectors to a .vec file with fastText's print-word-vectors",
        )
    if nwords + nlabels != size:
        raise c.fail(f"the dictionary holds {size} entries but {nwords} words", at)
    c.unpack("<q", "the token count")
    prune = c.integer("<q", "the pruned index size", -1, (c.size - c.pos) // 8) if new else 0
    seen: set[bytes] = set()
    for k in range(size):
        end = c.mm.find(b"\0", c.pos, min(c.size, c.pos + _MAX_WORD_BYTES))
        if end < 0:
            raise c.fail(f"word {k + 1} of {size} has no end (truncated, or longer than 64 KiB)")
        word = c.mm[c.pos : end]
        if word in seen:
            raise c.fail(f"word {k + 1} ({word[:40]!r}) appears twice in the dictionary")
        seen.add(word)
        c.pos = end + 1
        c.unpack("<qb", f"the count of word {k + 1}")
    c.need(8 * max(0, prune), "the pruned index")
    c.pos += 8 * max(0, prune)
    return nwords


def _matrix(
    c: _Cursor, new: bool, name: str, rows: int | None, dim: int, *, check_values: bool
) -> int:
    if new:
        at = c.pos
        if c.unpack("<?", f"the {name} matrix")[0]:
            raise FormatError(
                f"cannot read this fastText model: its {name} matrix is quantized (.ftz)",
                path=c.path, offset=at, hint="use the unquantized .bin model",
            )
    at = c.pos
    m = c.integer("<q", f"the {name} matrix's row count", 0, 2**62)
    n = c.integer("<q", f"the {name} matrix's column count", 0, 2**62)
    if (rows is not None and m != rows) or n != dim:
        expected = f"{rows} x {dim}" if rows is not None else f"N x {dim}"
        raise c.fail(f"the {name} matrix is {m} x {n}, expected {expected} (words + buckets "
                     "x dimension)", at)
    c.need(4 * m * n, f"the {name} matrix")
    start = c.pos
    bad = _first_non_finite(c.mm, start, m * n) if check_values else None
    if bad is not None:
        raise c.fail(f"row {bad // n} of the {name} matrix holds a NaN or infinite value",
                     start + 4 * bad)
    c.pos = start + 4 * m * n
    return start


def _first_non_finite(mm: mmap.mmap, start: int, count: int) -> int | None:
    """Index of the first NaN or infinite float32 of ``count`` at ``start``, block by block.
    Returns rather than raises: a traceback would keep the view alive and the map open."""
    values = np.frombuffer(mm, dtype="<f4", count=count, offset=start)
    try:
        for s in range(0, count, _BLOCK_FLOATS):
            ok = np.isfinite(values[s : s + _BLOCK_FLOATS])
            if not ok.all():
                return s + int(np.argmin(ok))
        return None
    finally:
        del values
