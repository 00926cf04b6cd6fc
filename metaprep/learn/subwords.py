"""Hashed character n-grams of the vocabulary's words, as fastText computes them (numpy only;
the learned source, learn/learned.py, trains a row per bucket).

A word is wrapped in ``<`` ``>`` and every run of 3 to 6 characters of the wrapped word is one
n-gram (fastText's minn/maxn defaults; characters, not bytes). Its bucket is the 32-bit FNV-1a
hash of its UTF-8 bytes modulo the number of buckets. fastText hashes each byte sign-extended
(``int8``), which differs from plain FNV-1a for non-ASCII bytes only; we use plain FNV-1a (the
published algorithm, testable against its published values). The hash does not depend on
``PYTHONHASHSEED``: a saved run rebuilds the same buckets from the store's words.

Each word keeps at most ``MAX_NGRAMS`` n-grams, shortest first: the 3-grams of a word of up to
60 characters all fit, and 99 % of the words of our real stores keep all of theirs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["MAX_NGRAMS", "MAXN", "MINN", "fnv1a", "subword_rows"]

MINN, MAXN = 3, 6  # fastText's defaults for -minn / -maxn
MAX_NGRAMS = 64  # per word, shortest first; the table is (words, <= 64) int32: 100 MB at 400k
FNV_BASIS, FNV_PRIME = 2166136261, 16777619
_MASK = 0xFFFFFFFF
_CHUNK = 50_000  # words per vectorised block: bounds the temporary arrays to ~100 MB


def fnv1a(data: bytes) -> int:
    """32-bit FNV-1a of ``data`` (one n-gram; subword_rows computes the same, vectorised)."""
    h = FNV_BASIS
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & _MASK
    return h


def _utf8(cps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code points (C,) -> their UTF-8 bytes (C, 4) (unused slots 0) and byte counts (C,)."""
    n = 1 + (cps >= 0x80) + (cps >= 0x800) + (cps >= 0x10000)
    out = np.zeros((len(cps), 4), dtype=np.uint64)
    out[:, 0] = np.select([n == 1, n == 2, n == 3], [cps, 0xC0 | cps >> 6, 0xE0 | cps >> 12],
                          0xF0 | cps >> 18)
    for slot in range(1, 4):  # continuation bytes carry 6 bits each, high bits first
        shift = (np.maximum(n - 1 - slot, 0) * 6).astype(np.uint64)
        out[:, slot] = np.where(slot < n, 0x80 | (cps >> shift) & 0x3F, 0)
    return out, n


def _chunk(words: Sequence[str], buckets: int, width: int) -> np.ndarray:
    """(len(words), width) int32 buckets of each word's n-grams, -1 after the last."""
    wrapped = ["<" + w + ">" for w in words]
    lens = np.array([len(w) for w in wrapped], dtype=np.int64)
    text = "".join(wrapped).encode("utf-32-le", "surrogatepass")
    cps = np.frombuffer(text, dtype=np.uint32).astype(np.uint64)  # (C,)
    utf8, nbytes = _utf8(cps)
    word = np.repeat(np.arange(len(words)), lens)  # (C,) the word of each character
    rem = lens[word] - (np.arange(len(cps)) - np.repeat(np.cumsum(lens) - lens, lens))
    h = np.full(len(cps), FNV_BASIS, dtype=np.uint64)  # one running hash per start position
    found: list[tuple[np.ndarray, np.ndarray]] = []  # (word, bucket) of each n-gram
    for k in range(MAXN):  # extend every n-gram by its (k+1)-th character
        inside = np.flatnonzero(rem > k)  # starts whose n-gram of k+1 characters fits the word
        c = inside + k
        for slot in range(4):
            on = inside[slot < nbytes[c]]
            h[on] = ((h[on] ^ utf8[on + k, slot]) * FNV_PRIME) & _MASK
        if k + 1 >= MINN:
            found.append((word[inside], (h[inside] % buckets).astype(np.int32)))
    owner = np.concatenate([f[0] for f in found])
    rows = np.concatenate([f[1] for f in found])
    order = np.argsort(owner, kind="stable")  # by word; within it shortest n-grams first
    owner, rows = owner[order], rows[order]
    first = np.searchsorted(owner, owner, side="left")
    rank = np.arange(len(owner)) - first
    keep = rank < width
    out = np.full((len(words), width), -1, dtype=np.int32)
    out[owner[keep], rank[keep]] = rows[keep]
    return out


def subword_rows(words: Sequence[str], buckets: int, *, cap: int = MAX_NGRAMS,
                 progress: bool = False) -> np.ndarray:
    """(len(words), W) int32: the n-gram buckets of each word, shortest n-grams first, -1
    padded; W is ``cap`` or less when no word has that many."""
    from tqdm import tqdm

    if buckets < 1:
        raise ValueError("subword_rows needs at least one bucket")
    most = max((len(w) + 2 for w in words), default=0)
    width = max(1, min(cap, sum(max(0, most - n + 1) for n in range(MINN, MAXN + 1))))
    out = np.empty((len(words), width), dtype=np.int32)
    starts = range(0, len(words), _CHUNK)
    bar = tqdm(starts, desc="hashing subwords", unit="block", leave=False, file=sys.stderr,
               disable=not progress or len(words) <= _CHUNK)
    for start in bar:
        out[start : start + _CHUNK] = _chunk(words[start : start + _CHUNK], buckets, width)
    return out
