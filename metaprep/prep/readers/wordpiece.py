"""WordPiece composition: a vector for a word a transformer's input table lacks, as the mean of
the rows of the pieces its tokenizer would cut the word into.

A WordPiece vocabulary (BERT, MiniLM, ...) holds whole words and continuation pieces written
``##piece``. As BERT's tokenizer does, a word is first split into runs of letters and digits and
single punctuation characters, then each run is cut greedily, longest match first: the first piece
as it is, the later ones with ``##``. A run that cannot be cut (a character the vocabulary lacks)
contributes nothing; a word none of whose runs can be cut gets no pieces (a zero vector).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence

__all__ = ["MAX_RUN", "has_wordpieces", "wordpieces"]

MAX_RUN = 100  # BERT's max_input_chars_per_word: a longer run is one unknown token
_PROBE = 5000  # vocabulary entries looked at to decide whether it is a WordPiece vocabulary


def has_wordpieces(tokens: Sequence[str]) -> bool:
    """Whether a vocabulary has continuation pieces (``##x``) among its first entries or its
    last ones (BERT's come after the whole words)."""
    probe = list(tokens[:_PROBE]) + list(tokens[-_PROBE:])
    return sum(1 for t in probe if t.startswith("##") and len(t) > 2) >= 10


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    # BERT counts all non-letter/number ASCII as punctuation, plus Unicode P* categories
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _runs(word: str) -> list[str]:
    runs: list[str] = []
    cur: list[str] = []
    for ch in word:
        if ch.isspace() or _is_punct(ch):
            if cur:
                runs.append("".join(cur))
                cur = []
            if not ch.isspace():
                runs.append(ch)
        else:
            cur.append(ch)
    if cur:
        runs.append("".join(cur))
    return runs


def _cut(run: str, index: Mapping[str, int]) -> list[int] | None:
    if len(run) > MAX_RUN:
        return None
    rows: list[int] = []
    start = 0
    while start < len(run):
        for end in range(len(run), start, -1):
            piece = run[start:end] if start == 0 else "##" + run[start:end]
            row = index.get(piece)
            if row is not None:
                rows.append(row)
                start = end
                break
        else:
            return None
    return rows


def wordpieces(word: str, index: Mapping[str, int]) -> list[int]:
    """The vocabulary rows of ``word``'s pieces (empty when no part of it can be cut)."""
    rows: list[int] = []
    for run in _runs(word):
        cut = _cut(run, index)
        if cut:
            rows.extend(cut)
    return rows
