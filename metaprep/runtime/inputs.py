"""Input texts for the predict and embed stages: records read from a stream, one at a time.

Three formats (``INPUT_FORMATS``): ``lines`` (one text per line; pairs ``text_a<TAB>text_b``),
``tsv`` (a header naming the columns) and ``jsonl`` (objects with those keys); ``auto`` picks one
by the file's extension. Each line is read up to ``MAX_LINE_BYTES``, bytes that are not UTF-8 are
replaced and reported, and a record that cannot be read is yielded with its problem, so one bad
line never stops a stream. Standard library only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from metaprep.errors import DataError

__all__ = ["INPUT_FORMATS", "MAX_LINE_BYTES", "Text", "chunked", "read_texts"]

Text = str | tuple[str, str]
INPUT_FORMATS = ("auto", "lines", "tsv", "jsonl")
# Longest input line read: memory stays bounded on a stream with no line ends (`yes | tr -d
# '\n'` would otherwise grow one line until the machine runs out). The tokenizer keeps at most
# max_tokens (default 512) tokens, found in far fewer bytes than this in any real text.
MAX_LINE_BYTES = 8 << 20


def _detect(name: str, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffix = os.path.splitext(name)[1].lower()
    return {".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl",
            ".ndjson": "jsonl"}.get(suffix, "lines")


def _bounded_lines(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """(line, whether it was cut) for every line, each at most MAX_LINE_BYTES long: the rest of
    a longer line is read and dropped piece by piece."""
    while True:
        raw = stream.readline(MAX_LINE_BYTES)
        if not raw:
            return
        cut = False
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            rest = stream.readline(MAX_LINE_BYTES)
            cut = rest not in (b"", b"\n", b"\r\n")  # not just a line exactly that long
            while rest and not rest.endswith(b"\n"):
                rest = stream.readline(MAX_LINE_BYTES)
            if cut:
                raw = raw[: _char_end(raw)]
        yield raw, cut


def _char_end(raw: bytes) -> int:
    """Where ``raw`` ends without a UTF-8 character cut in two (a cut one is dropped)."""
    i = len(raw) - 1
    while i > len(raw) - 4 and raw[i] & 0xC0 == 0x80:  # continuation bytes
        i -= 1
    lead = raw[i]
    need = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return i if i + need > len(raw) else len(raw)


def read_texts(
    stream: BinaryIO,
    *,
    name: str = "<stdin>",
    fmt: str = "auto",
    columns: Sequence[str] = ("text",),
    warn: Callable[[str], None] | None = None,
) -> Iterator[tuple[int, Text | None, str | None]]:
    """(line number, text or pair, problem) for every input line, streamed.

    ``lines``: one text per line (pairs: ``text_a<TAB>text_b``); ``tsv``: a header naming the
    ``columns``; ``jsonl``: objects with those keys. Bytes that are not UTF-8 are replaced and
    reported through ``warn`` with the line number. A record that cannot be read (bad JSON, a
    missing key) yields ``None`` and the problem, so one bad line never stops a stream. Empty
    lines are empty texts (in jsonl, blank lines are skipped).
    """
    # one generator for the three formats: they share the decoding, the line count and the
    # record count, and a stream must not be read twice
    fmt = _detect(name, fmt)
    if fmt not in INPUT_FORMATS[1:]:
        raise DataError(f"unknown input format {fmt!r}", path=name,
                        hint=f"use one of {', '.join(INPUT_FORMATS)}")
    pair = len(columns) == 2
    index: list[int] | None = None
    for no, (raw, cut) in enumerate(_bounded_lines(stream), 1):
        if cut:
            if fmt != "lines":  # a cut record is not a record
                yield no, None, f"longer than {MAX_LINE_BYTES:,} bytes"
                continue
            if warn is not None:
                warn(f"{name}:{no}: longer than {MAX_LINE_BYTES:,} bytes; only those were read")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.decode("utf-8", errors="replace")
            if warn is not None:
                warn(f"{name}:{no}: not valid UTF-8 (byte {exc.start}); undecodable bytes "
                     "replaced by U+FFFD")
        line = line.rstrip("\n").rstrip("\r")
        if fmt == "lines":
            if not pair:
                yield no, line, None
            else:
                a, tab, b = line.partition("\t")
                yield (no, (a, b), None) if tab else (no, None, "no TAB between the two texts")
        elif fmt == "tsv":
            fields = line.split("\t")
            if index is None:
                missing = [c for c in columns if c not in fields]
                if missing:
                    raise DataError(f"no column {', '.join(missing)} in the header {fields}",
                                    path=name, line=no, hint="pass --column NAME")
                index = [fields.index(c) for c in columns]
                continue
            if max(index) >= len(fields):
                yield no, None, f"{len(fields)} fields, the header has more"
                continue
            vals = [fields[i] for i in index]
            yield no, (vals[0], vals[1]) if pair else vals[0], None
        else:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                vals = [obj[c] for c in columns]
            except (ValueError, KeyError, TypeError) as exc:
                yield no, None, f"not a JSON object with {', '.join(columns)} ({exc})"
                continue
            if not all(isinstance(v, str) for v in vals):
                yield no, None, f"{', '.join(columns)} must be strings"
                continue
            yield no, (vals[0], vals[1]) if pair else vals[0], None


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of up to ``size`` items, so a stream is processed (and written) as it arrives."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
