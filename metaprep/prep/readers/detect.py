"""Which embedding format a file is, decided from its first bytes (gzip is looked through)."""

from __future__ import annotations

import struct
from pathlib import Path

from metaprep.errors import FormatError
from metaprep.prep.readers._io import open_binary
from metaprep.prep.readers.text_layout import BOM, header_problem, parse_header

__all__ = ["FASTTEXT_MAGIC", "FORMATS", "detect_format", "is_fasttext_head"]

FORMATS = ("glove", "word2vec-text", "word2vec-binary", "fasttext-bin", "npy", "safetensors")
FASTTEXT_MAGIC = 793712314  # int32 at the start of every fastText .bin model
_NPY_MAGIC = b"\x93NUMPY"
_HEAD = 1 << 16
# Bytes a text row's numbers are made of.
_NUMBER_BYTES = frozenset(b"0123456789+-.eE \t\r\nnaifNAIF")


def detect_format(path: str | Path) -> str:
    """One of FORMATS, from the file's content (the extension is only a tie-breaker)."""
    path = Path(path)
    f = open_binary(path)
    try:
        head = f.read(_HEAD)
    finally:
        f.close()
    if not head:
        raise FormatError("the file is empty", path=path, hint="check the download")
    if f.gzipped:
        return _detect_text_or_binary(path, head)
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if is_fasttext_head(head):
        return "fasttext-bin"
    if _looks_like_safetensors(head):
        return "safetensors"
    return _detect_text_or_binary(path, head)


def is_fasttext_head(head: bytes) -> bool:
    """fastText .bin: the magic number, or (models from before it existed) twelve int32
    training arguments whose values only fastText writes."""
    if len(head) >= 4 and struct.unpack("<i", head[:4])[0] == FASTTEXT_MAGIC:
        return True
    if len(head) < 48:
        return False
    dim, ws, epoch, min_count, neg, ngrams, loss, model, bucket, minn, maxn, lr_update = (
        struct.unpack("<12i", head[:48])
    )
    return (
        0 < dim <= 100_000 and 0 < ws < 1000 and 0 < epoch < 100_000 and 0 <= min_count
        and 0 <= neg < 10_000 and 0 < ngrams < 100 and 1 <= loss <= 4 and 1 <= model <= 3
        and 0 <= bucket and 0 <= minn <= maxn < 1000 and 0 < lr_update
    )


def _looks_like_safetensors(head: bytes) -> bool:
    # 8-byte little-endian header length, then a JSON object
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n < (100 << 20) and head[8:9] == b"{"


def _detect_text_or_binary(path: Path, head: bytes) -> str:
    if head.startswith(BOM):
        head = head[len(BOM) :]
    nl = head.find(b"\n")
    header = parse_header(head[: nl if nl >= 0 else len(head)])
    if header is None:
        return "glove"
    if header_problem(*header):
        return "word2vec-text"  # whichever it is, its reader refuses the header, naming why
    _, dim = header
    rest = head[nl + 1 :]
    sp = rest.find(b" ")
    if sp < 0:
        return "word2vec-text"  # header only (the reader reports it) or one huge word
    end = rest.find(b"\n", sp + 1)
    if end < 0:  # the first row does not end within the sniffed bytes
        sample = rest[sp + 1 : sp + 1 + 4 * dim]
        return "word2vec-text" if set(sample) <= _NUMBER_BYTES else "word2vec-binary"
    fields = rest[:end].rstrip(b"\r ").split(b" ")
    numbers = len(fields) - 1
    for k, x in enumerate(reversed(fields[1:])):
        if not _is_number(x):
            numbers = k
            break
    if dim and numbers >= dim:  # a text row: a word, then dim numbers
        return "word2vec-text"
    if numbers and numbers == len(fields) - 1:
        # a word and only text numbers up to the line's end, fewer than the header says: a text
        # file whose header is wrong (its reader says so), not binary bytes that happen to look
        # like it
        return "word2vec-text"
    return "word2vec-binary"


def _is_number(field: bytes) -> bool:
    if not field or not set(field) <= _NUMBER_BYTES:
        return False
    try:
        float(field)
    except ValueError:
        return False
    return True

