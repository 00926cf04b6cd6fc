"""The target vocabulary of an align run (the words listed, and those counted in task data), and
how its words find source rows under the case policy (CaseMatcher)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from metaprep.ids import CASE_POLICIES, FALLBACK_STEPS, case_variants
from metaprep.prep.readers.base import LowercaseWanted
from metaprep.taskdata import Columns, read_examples
from metaprep.tokenize import Tokenizer

__all__ = ["CaseMatcher", "count_words", "pool_vocab", "target_vocab"]


def count_words(
    paths: Iterable[str | Path], tokenizer: Tokenizer, *, encoding: str = "utf-8",
    columns: Columns | None = None,
) -> Counter[str]:
    """Token counts over the texts of task data files (labels are not words)."""
    counts: Counter[str] = Counter()
    for path in paths:
        for ex in read_examples(path, encoding=encoding, require_label=False, columns=columns):
            texts = ex.text if isinstance(ex.text, tuple) else (ex.text,)
            for t in texts:
                counts.update(tokenizer(t))
    return counts


def target_vocab(
    listed: Iterable[str],
    counts: Mapping[str, int] | None = None,
    *,
    case_policy: str = "exact",
    min_count: int = 1,
    max_vocab: int | None = None,
) -> list[str]:
    """The vocabulary to align: listed words in their order, then counted words most frequent
    first (ties in first-seen order) with at least ``min_count`` occurrences, without repeats,
    lowercased under the ``lower`` policy, cut to ``max_vocab``."""
    fold = str.lower if case_policy == "lower" else (lambda w: w)
    out: dict[str, None] = {}
    for w in listed:
        out.setdefault(fold(w))
    if counts:
        folded: dict[str, int] = {}
        for w, c in counts.items():
            folded[fold(w)] = folded.get(fold(w), 0) + c
        ranked = sorted(folded.items(), key=lambda kv: -kv[1])  # stable: ties keep first-seen
        for w, c in ranked:
            if c >= min_count:
                out.setdefault(w)
    words = list(out)
    return words if max_vocab is None else words[:max_vocab]


def pool_vocab(
    streams: Iterable[Iterable[Sequence[str]]],
    *,
    mode: str = "union",
    case_policy: str = "exact",
    max_vocab: int | None = None,
) -> dict[str, int]:
    """Union or intersection of several sources' words (each stream yields lists of words, as
    ``Source.iter_words()`` does), as word -> row in order: the first source's words, then each
    next source's new words. Lowercased under ``lower``. Under ``fallback`` the intersection
    keeps the words every source can provide through the fallback chain."""
    if mode not in ("union", "intersection"):
        raise ValueError(f"mode must be union or intersection, not {mode!r}")
    lower = case_policy == "lower"
    keep_sets = mode == "intersection" and case_policy == "fallback"
    index: dict[str, int] = {}
    seen_in: dict[str, int] = {}  # word -> number of sources holding it
    last: dict[str, int] = {}  # word -> last source that counted it
    word_sets: list[set[str]] = []
    n = 0
    for k, stream in enumerate(streams):
        n += 1
        own: set[str] = set()
        for words in stream:
            for w in words:
                if keep_sets:
                    own.add(w)
                if lower:
                    w = w.lower()
                if w not in index:
                    index[w] = len(index)
                if mode == "intersection" and last.get(w) != k:
                    last[w] = k
                    seen_in[w] = seen_in.get(w, 0) + 1
        word_sets.append(own)
    if mode == "intersection":
        if keep_sets:
            keep = [w for w in index if all(
                any(form in s for _, form in case_variants(w, "fallback")) for s in word_sets)]
        else:
            keep = [w for w in index if seen_in.get(w) == n]
        index = {w: i for i, w in enumerate(keep)}
    if max_vocab is not None and len(index) > max_vocab:
        index = {w: i for w, i in index.items() if i < max_vocab}
    return index


_NO_MATCH = 255


class CaseMatcher:
    """Matches the words a source streams (file order) to rows of the aligned vocabulary.

    exact: the word itself. lower: the vocabulary is lowercase and a source word matches its
    lowercased form; the first match in file order wins. fallback: a vocabulary word takes the
    source row of its best step (exact, then lower, Title, UPPER), whatever the file order.
    ``step_counts()`` says how many rows each step filled.
    """

    def __init__(
        self, words: Sequence[str], policy: str, *, index: dict[str, int] | None = None
    ) -> None:
        """``index`` (word -> row, consistent with ``words``) saves building a second one."""
        if policy not in CASE_POLICIES:
            raise ValueError(f"case policy must be one of {', '.join(CASE_POLICIES)}")
        self.policy = policy
        self._words = words
        self._grown: list[str] | None = None  # the words of a growing_union()
        self._best = bytearray([_NO_MATCH]) * len(words)  # best step rank seen per row
        self._index: dict[str, int] = {}
        if index is not None and policy != "fallback":
            if policy == "lower" and any(w != w.lower() for w in index):
                raise ValueError("the lower policy needs a lowercase vocabulary")
            self._index = index
            return
        self._by_lower: dict[str, int | list[int]] = {}
        if policy == "fallback":
            for i, w in enumerate(words):
                key = w.lower()
                prev = self._by_lower.get(key)
                if prev is None:
                    self._by_lower[key] = i
                elif isinstance(prev, list):
                    prev.append(i)
                else:
                    self._by_lower[key] = [prev, i]
        else:
            for i, w in enumerate(words):
                if policy == "lower" and w != w.lower():
                    raise ValueError(f"the lower policy needs a lowercase vocabulary, got {w!r}")
                self._index[w] = i

    @classmethod
    def growing_union(cls, policy: str) -> CaseMatcher:
        """A union vocabulary built while the sources stream, instead of by a words-only pass
        first: a source word whose key (the word, lowercased under ``lower``) is new becomes the
        next row. Gives pool_vocab's union in the same order (the first source's words, then
        each next source's new words). Not for ``fallback``: a word added by a later source may
        be a case variant of a row an earlier source already streamed past."""
        if policy not in ("exact", "lower"):
            raise ValueError(f"a growing union needs the exact or lower policy, not {policy!r}")
        matcher = cls([], policy, index={})
        grown: list[str] = []
        matcher._words = matcher._grown = grown
        return matcher

    @property
    def words(self) -> Sequence[str]:
        """The vocabulary (grown so far, for a growing union)."""
        return self._words

    def __len__(self) -> int:
        return len(self._best)

    def reset(self) -> None:
        """Forget the matches so far (before streaming the next source)."""
        self._best[:] = bytes([_NO_MATCH]) * len(self._best)

    @property
    def steps(self) -> tuple[str, ...]:
        return FALLBACK_STEPS if self.policy == "fallback" else (self.policy,)

    def wanted(self) -> Collection[str]:
        """The source words worth reading (for ``Source.iter_chunks(wanted=...)``)."""
        if self.policy == "exact":
            return self._index.keys()
        if self.policy == "lower":
            return LowercaseWanted(self._index.keys())
        return {form for w in self._words for _, form in case_variants(w, "fallback")}

    def _candidates(self, word: str) -> Iterator[tuple[int, int]]:
        """(row, step rank) pairs the source word could fill."""
        if self.policy == "exact":
            i = self._index.get(word)
            if i is not None:
                yield i, 0
            return
        if self.policy == "lower":
            i = self._index.get(word.lower())
            if i is not None:
                yield i, 0
            return
        rows = self._by_lower.get(word.lower())
        if rows is None:
            return
        for i in rows if isinstance(rows, list) else (rows,):
            for step, form in case_variants(self._words[i], "fallback"):
                if form == word:
                    yield i, FALLBACK_STEPS.index(step)
                    break

    def match(self, words: Sequence[str]) -> tuple[list[int], list[int]]:
        """(positions in ``words``, rows) to write: rows are unique and only improve on what
        earlier calls matched. Later calls may overwrite a row with a better step."""
        if self.policy != "fallback":
            return self._match_key(words)
        chosen: dict[int, int] = {}
        best = self._best
        for pos, word in enumerate(words):
            for row, rank in self._candidates(word):
                if rank < best[row]:
                    best[row] = rank
                    chosen[row] = pos
        return list(chosen.values()), list(chosen.keys())

    def _match_key(self, words: Sequence[str]) -> tuple[list[int], list[int]]:
        """match() for exact / lower: one step, so a row is taken by its first match. Dict
        look-ups run in C over the whole chunk; only the hits loop in Python."""
        keys = words if self.policy == "exact" else [w.lower() for w in words]
        index = self._index
        n0, n = len(index), len(keys)
        if self._grown is not None and self.policy == "exact" and (
            # (dict_keys.isdisjoint walks the smaller side; set.isdisjoint(dict) the dict)
            len(fresh := set(keys)) == n and index.keys().isdisjoint(fresh)
        ):  # all new (a union's first source): the next rows, in order
            index.update(zip(keys, range(n0, n0 + n), strict=True))
            self._grown.extend(keys)
            self._best.extend(bytes(n))  # rank 0: matched
            return list(range(n)), list(range(n0, n0 + n))
        if self._grown is not None:
            new = [k for k in dict.fromkeys(keys) if k not in index]
            index.update(zip(new, range(len(index), len(index) + len(new)), strict=True))
            self._grown.extend(new)
            self._best.extend(bytes([_NO_MATCH]) * len(new))
        best = self._best
        pos: list[int] = []
        rows: list[int] = []
        for p, row in enumerate(map(index.get, keys)):
            if row is not None and best[row] == _NO_MATCH:
                best[row] = 0
                pos.append(p)
                rows.append(row)
        return pos, rows

    def matched(self) -> list[bool]:
        return [b != _NO_MATCH for b in self._best]

    def step_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.steps, 0)
        for b in self._best:
            if b != _NO_MATCH:
                counts[FALLBACK_STEPS[b] if self.policy == "fallback" else self.policy] += 1
        return counts
