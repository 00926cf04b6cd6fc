"""What a text embedding file looks like, from its first rows: a BOM, a ``count dim`` header
(word2vec text, fastText .vec) or none (GloVe), and the vector length."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from metaprep.errors import FormatError
from metaprep.prep.readers._io import open_binary, too_long
from metaprep.prep.readers.base import MAX_DIM

__all__ = [
    "BOM",
    "TEXT_FORMATS",
    "TextLayout",
    "header_problem",
    "is_float",
    "parse_header",
    "sniff_text",
    "strip_end",
]

TEXT_FORMATS = ("glove", "word2vec-text")
BOM = b"\xef\xbb\xbf"
_SNIFF_BYTES = 1 << 20  # read this much (more if lines are long) to find the header and dim
_SNIFF_LINES = 200  # data lines used to find the usual vector length
_MIN_MAX_LINE = 1 << 20  # a line may always be this long (see TextLayout.max_line)
_INTEGER = re.compile(rb"[+-]?[0-9]+")


@dataclass(frozen=True)
class TextLayout:
    format: str  # "glove" or "word2vec-text"
    has_header: bool
    dim: int
    declared_count: int | None  # the header's row count
    data_start: int  # byte offset of the first data row (after the BOM and header)
    gzipped: bool = False
    line_bytes: float = 1.0  # mean bytes per data line in the sniffed rows (for estimates)
    # A longer line is an error, not a word: 64 times the sniffed rows' median, at least 1 MiB,
    # so a corrupt file or a gzip bomb without newlines fails fast instead of filling memory.
    max_line: int = _MIN_MAX_LINE


def parse_header(line: bytes) -> tuple[int, int] | None:
    """``(count, dim)`` when ``line`` is a word2vec header: two integers. A sign is taken, so
    that ``3 -5`` is refused as a header (header_problem) rather than read as a GloVe row; a
    number of more than 19 digits reads as 10**19, which every bound refuses (``int()`` of
    more than 4,300 digits would raise)."""
    parts = line.strip(b" \t\r\n").split()
    if len(parts) == 2 and all(_INTEGER.fullmatch(p) for p in parts):
        return _integer(parts[0]), _integer(parts[1])
    return None


def _integer(text: bytes) -> int:
    digits = text.lstrip(b"+-").lstrip(b"0")
    value = int(digits or b"0") if len(digits) <= 19 else 10**19
    return -value if text.startswith(b"-") else value


def header_problem(count: int, dim: int) -> str | None:
    """What is wrong with a header's ``count dim``, if anything (the count against the file's
    size is checked by each reader, which knows the size of a row)."""
    if count < 0:
        return f"the header declares {count:,} rows (a count cannot be negative)"
    if dim < 1:
        return f"the header declares {dim:,} dimensions (a vector has at least 1)"
    if dim > MAX_DIM:
        return f"the header declares {dim} dimensions (more than {MAX_DIM:,})"
    return None


def strip_end(line: bytes) -> bytes:
    """Drop a CR and trailing spaces (fastText .vec ends each line with one)."""
    return line.rstrip(b"\r").rstrip(b" ")


def _numeric_tail(fields: list[bytes]) -> int:
    """How many fields at the end of a row are numbers."""
    k = 0
    for x in reversed(fields):
        if not is_float(x):
            break
        k += 1
    return k


def _usual_dim(rows: list[bytes]) -> int | None:
    """The most common vector length among sample rows (a row may be a word with spaces, or
    a number used as a word, so count the trailing numbers, not the fields)."""
    counts: dict[int, int] = {}
    for row in rows:
        fields = row.split(b" ")
        k = _numeric_tail(fields)
        d = k - 1 if k == len(fields) else k  # every field a number: the first is the word
        counts[d] = counts.get(d, 0) + 1
    return max(counts, key=lambda d: counts[d]) if counts else None


def _fits(row: bytes, dim: int) -> bool:
    """Whether a sample row reads as a word and ``dim`` numbers (the word may hold spaces but
    then must not end in something numeric, or the split would be ambiguous)."""
    n = row.count(b" ")
    if n == dim:
        return True
    return n > dim and not is_float(row.rsplit(b" ", dim + 1)[1])


def is_float(x: bytes) -> bool:
    """Whether a field is a number as polars reads one (so not "1_0", which Python's
    float() takes for 10)."""
    try:
        float(x)
    except ValueError:
        return False
    return b"_" not in x


def _max_line(path: Path, lines: list[bytes], complete: bool) -> int:
    """The line-length bound from the sniffed lines (all ending in a newline unless
    ``complete``); a sniffed line already past it is the error, naming its line."""
    done = lines if complete else lines[:-1]
    sizes = sorted(len(x) + 1 for x in done if x.strip())
    limit = max(_MIN_MAX_LINE, 64 * sizes[len(sizes) // 2]) if sizes else _MIN_MAX_LINE
    for no, line in enumerate(lines, 1):
        if len(line) > limit:  # the last may be incomplete: then it is longer still
            raise too_long(path, no, limit)
    return limit


def _check_dim(path: Path, dim: int, what: str) -> None:
    if dim > MAX_DIM:
        raise FormatError(f"{what} {dim} dimensions (more than {MAX_DIM:,})", path=path, line=1,
                          hint="the file is corrupt, or its header is")


def _check_count(path: Path, count: int, dim: int, room: int) -> None:
    """A text row takes at least 2*dim + 2 bytes (``w 0 0 ...\n``): a header promising more
    rows than the file can hold is refused before they are read."""
    need = count * (2 * dim + 2)
    if need > room:
        raise FormatError(
            f"the header declares {count:,} rows of {dim} numbers, which take at least "
            f"{need:,} bytes, but the file has {room:,} after the header",
            path=path, line=1,
            hint="the file is truncated (download it again) or its header's first number is wrong",
        )


def sniff_text(
    path: Path, fmt: str | None = None, *, limit: int | None = None, check_count: bool = True
) -> TextLayout:
    """Read the first rows of ``path``; ``fmt`` forces glove (no header) or word2vec-text.
    With ``check_count``, a plain file too small for the header's row count (or ``limit``, the
    ReadOptions field, when smaller) is refused at once."""
    f = open_binary(path)
    try:
        gzipped, size = f.gzipped, f.size
        head = f.read(_SNIFF_BYTES)
        eof = len(head) < _SNIFF_BYTES
        while not eof and head.count(b"\n") <= _SNIFF_LINES and len(head) < 16 * _SNIFF_BYTES:
            more = f.read(_SNIFF_BYTES)
            eof = len(more) < _SNIFF_BYTES
            head += more
    finally:
        f.close()
    bom = head.startswith(BOM)
    if bom:
        head = head[len(BOM) :]
    if not head.strip():
        raise FormatError("the file is empty", path=path, hint="check the download")
    lines = head.split(b"\n")
    max_line = _max_line(path, lines, eof)
    if not eof and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the sniff window
    header = parse_header(lines[0]) if fmt != "glove" else None
    if fmt == "word2vec-text" and header is None:
        raise FormatError(
            "expected a 'count dim' header line for word2vec text",
            path=path, line=1, hint="for a file without a header use the glove format",
        )
    data_start = (len(BOM) if bom else 0) + (len(lines[0]) + 1 if header else 0)
    data = lines[1 if header else 0 :]
    line_bytes = max(1.0, sum(len(x) + 1 for x in data) / max(1, len(data)))
    body = [s for s in (strip_end(x) for x in data) if s][:_SNIFF_LINES]
    if header is not None:
        count, dim = header
        problem = header_problem(count, dim)
        if problem:
            raise FormatError(problem, path=path, line=1, hint="the file is corrupt, or its "
                              "header is: fix the header line")
        if not body:
            raise FormatError(
                "the file has a header line but no vectors", path=path, hint="check the download"
            )
        if not any(_fits(row, dim) for row in body):
            raise FormatError(
                f"the header declares {dim} dimensions but the rows have {_usual_dim(body)} "
                "numbers",
                path=path, line=1, hint="fix the header line's second number",
            )
        if check_count and not gzipped:
            _check_count(path, count if limit is None else min(count, limit), dim,
                         size - data_start)
        return TextLayout("word2vec-text", True, dim, count, data_start, gzipped, line_bytes,
                          max_line)
    usual = _usual_dim(body)
    if not usual:
        raise FormatError(
            "no vectors found: expected lines of a word followed by numbers", path=path, line=1
        )
    _check_dim(path, usual, "the rows have")
    return TextLayout("glove", False, usual, None, data_start, gzipped, line_bytes, max_line)
