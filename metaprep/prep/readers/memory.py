"""A Source over words and vectors already in memory: for tests, and for aligning arrays a
program computed itself (``align(..., opener=...)``)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import numpy as np

from metaprep.prep.readers.base import Chunk, ReadOptions, ReadStats, Source

__all__ = ["MemorySource"]


class MemorySource(Source):
    """Streams ``words`` / ``vectors`` in ``chunk_size`` pieces, following the Source contract
    (repeated words dropped and counted, ``limit`` honoured, ``wanted`` filtering)."""

    def __init__(
        self,
        words: Sequence[str],
        vectors: np.ndarray,
        *,
        path: str | Path = "<memory>",
        format: str = "memory",
        options: ReadOptions | None = None,
        chunk_size: int = 1000,
        subwords: Callable[[Sequence[str]], np.ndarray] | None = None,
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(words):
            raise ValueError("vectors must be (len(words), dim)")
        self.path = Path(path)
        self.format = format
        self.dim = int(vectors.shape[1])
        self.declared_count = len(words)
        self.stats = ReadStats()
        self.has_subwords = subwords is not None
        self._words = list(words)
        self._vectors = vectors
        self._options = options or ReadOptions()
        self._chunk = chunk_size
        self._subwords = subwords

    def iter_chunks(self, wanted: Collection[str] | None = None) -> Iterator[Chunk]:
        self.stats = ReadStats()
        seen: set[str] = set()
        n = len(self._words)
        if self._options.limit is not None:
            n = min(n, self._options.limit)
        for start in range(0, n, self._chunk):
            keep_words: list[str] = []
            keep_rows: list[int] = []
            for i in range(start, min(start + self._chunk, n)):
                w = self._words[i]
                self.stats.rows_read += 1
                if w in seen:
                    self.stats.duplicates += 1
                    continue
                seen.add(w)
                if wanted is None or w in wanted:
                    keep_words.append(w)
                    keep_rows.append(i)
            if keep_words:
                yield Chunk(keep_words, self._vectors[keep_rows])

    def subword_vectors(self, words: Sequence[str]) -> np.ndarray:
        if self._subwords is None:
            return super().subword_vectors(words)
        return np.asarray(self._subwords(words), dtype=np.float32)
