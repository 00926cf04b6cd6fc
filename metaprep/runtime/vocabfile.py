"""The model directory's vocabulary files, served from disk (layout in docs/model-dir.md).

``vocab.txt`` (one word per line, row ``i`` is id ``i + 2``), ``vocab.offsets.npy`` (byte offset of
every line) and ``vocab.index.npy`` (an open-addressing hash table of ``row + 1``, 0 = empty slot,
linear probing, slot = blake2b-64(word) mod size). All three are memory-mapped, so opening a model
with millions of words costs milliseconds and almost no resident memory; a lookup hashes the token
and compares the word's bytes. The files may come from a stranger: opening checks their shapes,
dtypes and value ranges, so a lookup can neither index out of range nor probe forever.

Standard library and numpy only, because the runtime imports it. Reached through
``metaprep.runtime.modeldir``, the owner of the directory's layout, which names the three files
(``VocabFiles``).
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from metaprep.errors import ModelError
from metaprep.ids import CASE_POLICIES, first_row, token_id

__all__ = ["MappedVocab", "VocabFiles", "word_hash", "write_vocab"]


class VocabFiles(NamedTuple):
    """The vocabulary's three files, as the model directory names them."""

    words: Path  # one word per line
    offsets: Path  # the byte offset of every line
    table: Path  # the hash index


def word_hash(word: bytes) -> int:
    """64-bit hash of a word's UTF-8 bytes (stable across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(word, digest_size=8).digest(), "little")


# --- vocabulary --------------------------------------------------------------------------------
def _build_index(words: Sequence[bytes]) -> np.ndarray:
    size = 1 << max(4, (2 * len(words) - 1).bit_length())  # load factor <= 0.5
    mask = size - 1
    slots = np.fromiter((word_hash(w) & mask for w in words), dtype=np.int64, count=len(words))
    table = np.zeros(size, dtype=np.int64)
    rows = np.arange(len(words), dtype=np.int64)
    # Vectorised linear probing: each round, the first pending row aiming at a free slot takes it;
    # the others move one slot on. A row only ever moves past occupied slots, so a lookup that
    # probes from the home slot to the first empty one finds it.
    while len(rows):
        free = table[slots] == 0
        _, first = np.unique(slots[free], return_index=True)
        winners = np.flatnonzero(free)[first]
        table[slots[winners]] = rows[winners] + 1
        keep = np.ones(len(rows), dtype=bool)
        keep[winners] = False
        rows, slots = rows[keep], (slots[keep] + 1) & mask
    return table


def write_vocab(files: VocabFiles, words: Sequence[str]) -> None:
    """Write the words, their line offsets and their hash index."""
    encoded: list[bytes] = []
    for i, w in enumerate(words):
        if "\n" in w or "\r" in w:
            raise ModelError(f"vocabulary word at row {i} contains a line break: {w!r}",
                             path=files.words.parent, hint="drop or rename that word in the store")
        encoded.append(w.encode("utf-8"))
    lengths = np.fromiter((len(b) + 1 for b in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    with open(files.words, "wb") as f:
        for b in encoded:
            f.write(b + b"\n")
    np.save(files.offsets, offsets)
    np.save(files.table, _build_index(encoded))


_DAMAGED = "the model directory is damaged; re-export it"


def _bad(path: Path, what: str) -> ModelError:
    return ModelError(f"bad vocabulary file: {what}", path=path, hint=_DAMAGED)


def _is_int64(a: np.ndarray) -> bool:
    return a.dtype.kind == "i" and a.dtype.itemsize == 8


def _check_offsets(offsets: np.ndarray, text_bytes: int, files: VocabFiles) -> None:
    """Line starts: 1-D int64, from 0, each line at least its newline, ending at the file's end."""
    path = files.offsets
    if offsets.ndim != 1 or not _is_int64(offsets) or len(offsets) == 0:
        raise _bad(path, f"expected a 1-D int64 array, got {offsets.dtype} {offsets.shape}")
    if int(offsets[0]) != 0 or int(offsets[-1]) != text_bytes:
        raise _bad(path, f"offsets run from {int(offsets[0])} to {int(offsets[-1])}, "
                         f"{files.words.name} has {text_bytes} bytes")
    if len(offsets) > 1 and int(np.diff(offsets).min()) < 1:
        raise _bad(path, "offsets are not increasing")


def _load_array(path: Path) -> np.ndarray:
    """A memory-mapped .npy array; whatever numpy raises on damaged bytes (ValueError,
    tokenize's TokenError on a header, ...) is a ModelError naming the file."""
    try:
        return np.load(path, mmap_mode="r")
    except Exception as exc:  # numpy's errors on a damaged file are not one type
        raise _bad(path, f"not a readable .npy array ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]})") from exc


# the words' file is checked in pieces of about this many bytes, each ending at a line end
_CHUNK = 1 << 20


def _check_lines(text: mmap.mmap | bytes, offsets: np.ndarray, files: VocabFiles) -> None:
    """The words' file as write_vocab writes it: UTF-8 throughout, each line ending where the
    offsets say, with no other line break (a word holding a CR or LF cannot be a token)."""
    path = files.words
    raw = np.frombuffer(text, dtype=np.uint8) if len(text) else np.zeros(0, np.uint8)
    words = len(offsets) - 1
    if words and not (raw[np.asarray(offsets[1:]) - 1] == 0x0A).all():
        bad = int(np.flatnonzero(raw[np.asarray(offsets[1:]) - 1] != 0x0A)[0])
        raise ModelError(f"bad vocabulary file: the line does not end where "
                         f"{files.offsets.name} says", path=path, line=bad + 1, hint=_DAMAGED)
    if int(np.count_nonzero(raw == 0x0A)) != words or np.count_nonzero(raw == 0x0D):
        cut = np.flatnonzero(raw == 0x0D)
        line = int(np.count_nonzero(raw[: cut[0]] == 0x0A)) + 1 if len(cut) else None
        raise ModelError("bad vocabulary file: a word holds a line break", path=path, line=line,
                         hint=_DAMAGED)
    start = 0
    while start < len(raw):  # strict UTF-8, a piece at a time (no copy of a large file)
        # a piece ends after a line end: no UTF-8 sequence holds that byte
        end = text.find(b"\n", min(start + _CHUNK, len(raw) - 1)) + 1 or len(raw)
        try:
            bytes(text[start:end]).decode("utf-8")
        except UnicodeDecodeError as exc:
            at = start + exc.start
            line = int(np.count_nonzero(raw[:at] == 0x0A)) + 1
            raise ModelError(f"bad vocabulary file: not UTF-8 (byte {at})", path=path,
                             line=line, hint=_DAMAGED) from exc
        start = end


def _check_index(table: np.ndarray, words: int, path: Path) -> None:
    """The hash table: a power-of-two int64 array of row + 1 (0 <= entry <= words) with at least
    one empty slot, without which looking up an unknown word would probe forever."""
    n = len(table) if table.ndim == 1 else 0
    if table.ndim != 1 or not _is_int64(table) or n == 0 or n & (n - 1):
        raise _bad(path, f"expected a 1-D int64 array of 2^k slots, got {table.dtype} "
                         f"{table.shape}")
    low, high = int(table.min()), int(table.max())
    if low < 0 or high > words:
        raise _bad(path, f"slot values {low}..{high} outside 0..{words} (rows + 1)")
    if low != 0:
        raise _bad(path, "no empty slot (a lookup of an unknown word would never end)")


class MappedVocab:
    """Token -> id through the memory-mapped index; same answers as ``vocab.VocabIndex``."""

    def __init__(self, files: VocabFiles, *, case_policy: str) -> None:
        if case_policy not in CASE_POLICIES:
            raise ModelError(f"unknown case policy {case_policy!r}", path=files.words.parent)
        self.case_policy = case_policy
        self._offsets = _load_array(files.offsets)
        self._table = _load_array(files.table)
        try:
            with open(files.words, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                self._text: mmap.mmap | bytes = (
                    mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
                )
        except (OSError, ValueError) as exc:
            raise _bad(files.words, f"cannot open it ({exc})") from exc
        _check_offsets(self._offsets, size, files)
        _check_lines(self._text, self._offsets, files)
        _check_index(self._table, len(self._offsets) - 1, files.table)
        self._mask = len(self._table) - 1
        self._cache = _IdCache(self)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def word(self, row: int) -> str:
        start, end = int(self._offsets[row]), int(self._offsets[row + 1]) - 1
        return bytes(self._text[start:end]).decode("utf-8")

    def _find(self, word: str) -> int | None:
        b = word.encode("utf-8", "surrogatepass")
        slot = word_hash(b) & self._mask
        while True:
            entry = int(self._table[slot])
            if entry == 0:
                return None
            row = entry - 1
            start, end = int(self._offsets[row]), int(self._offsets[row + 1]) - 1
            if end - start == len(b) and self._text[start:end] == b:
                return row
            slot = (slot + 1) & self._mask

    def row(self, token: str) -> int | None:
        return first_row(token, self.case_policy, self._find)

    def lookup(self, token: str) -> int:
        """The id of a token, through the index (no cache)."""
        return token_id(self.row(token))

    def id(self, token: str) -> int:
        return self._cache[token]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return list(map(self._cache.__getitem__, tokens))

    def encode_array(self, tokens: Sequence[str]) -> np.ndarray:
        """int64 ids of many tokens at once: a C-level loop over the cache for known words."""
        return np.fromiter(map(self._cache.__getitem__, tokens), dtype=np.int64,
                           count=len(tokens))


class _IdCache(dict[str, int]):
    """token -> id. Real text repeats its frequent words, and a dict hit beats hashing; a miss
    looks the token up in the index (``__missing__``), remembered while the cache is small."""

    def __init__(self, vocab: MappedVocab) -> None:
        super().__init__()
        self._vocab = vocab

    def __missing__(self, token: str) -> int:
        got = self._vocab.lookup(token)
        if len(self) < 200_000:
            self[token] = got
        return got
