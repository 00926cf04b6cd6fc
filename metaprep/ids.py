"""Vocabulary ids and the case policy. Pure standard library: the runtime imports it.

Id layout shared by train, export and runtime: 0 is padding, 1 is the shared UNK, and row ``i``
of the store's ``/vocab`` is id ``i + 2``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = [
    "BIGRAM_MULT",
    "CASE_POLICIES",
    "FALLBACK_STEPS",
    "ID_OFFSET",
    "PAD_ID",
    "UNK_ID",
    "VocabIndex",
    "case_variants",
    "first_row",
    "token_id",
]

PAD_ID = 0
UNK_ID = 1
# the text graph's id for a token its string map lacks: the runtime looks it up in Python
MISSED_ID = -1
ID_OFFSET = 2
# word-bigram bucket of ids (a, b): (a * BIGRAM_MULT + b) % buckets, in training and in the
# exported graph alike (fastText's n-gram multiplier; a * MULT stays far below 2**63)
BIGRAM_MULT = 116_049_371

# exact: the word as written; lower: everything lowercased; fallback: try exact, then lower,
# then Title, then UPPER (recovers words a cased source only has in another case).
CASE_POLICIES = ("exact", "lower", "fallback")
FALLBACK_STEPS = ("exact", "lower", "title", "upper")


def case_variants(word: str, policy: str) -> list[tuple[str, str]]:
    """The (step, form) pairs to look a word up with, in order, without repeats."""
    if policy == "exact":
        return [("exact", word)]
    if policy == "lower":
        return [("lower", word.lower())]
    if policy != "fallback":
        raise ValueError(f"case policy must be one of {', '.join(CASE_POLICIES)}, not {policy!r}")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for step, form in zip(
        FALLBACK_STEPS, (word, word.lower(), word[:1].upper() + word[1:].lower(), word.upper()),
        strict=True,
    ):
        if form not in seen:
            seen.add(form)
            out.append((step, form))
    return out


def first_row(token: str, policy: str, find: Callable[[str], int | None]) -> int | None:
    """The row of the first of the token's case variants that ``find`` knows, or None."""
    for _, form in case_variants(token, policy):
        row = find(form)
        if row is not None:
            return row
    return None


def token_id(row: int | None) -> int:
    """The model id of a vocabulary row (UNK for None)."""
    return UNK_ID if row is None else row + ID_OFFSET


class VocabIndex:
    """Maps tokens to model ids through the aligned vocabulary and the store's case policy."""

    def __init__(self, words: Sequence[str], *, case_policy: str = "exact") -> None:
        if case_policy not in CASE_POLICIES:
            raise ValueError(f"case policy must be one of {', '.join(CASE_POLICIES)}")
        self.words = list(words)
        self.case_policy = case_policy
        self._index: Mapping[str, int] = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @property
    def num_ids(self) -> int:
        """Size of the id space: padding, UNK and every word."""
        return len(self.words) + ID_OFFSET

    def row(self, token: str) -> int | None:
        """Row of the store vocabulary for a token, or None."""
        return first_row(token, self.case_policy, self._index.get)

    def id(self, token: str) -> int:
        return token_id(self.row(token))

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.id(t) for t in tokens]
