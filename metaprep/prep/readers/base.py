"""The contract every embedding reader fulfils (see readers/__init__.py for the dispatcher).

A Source streams (words, vectors) in file order, in chunks, so a caller never has to hold a whole
multi-GB file in memory. Duplicate words are dropped as they are met (the first occurrence wins)
and counted in ``stats.duplicates``. With ``wanted``, rows whose word is not wanted are skipped
as early as the format allows (ideally before their numbers are parsed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Chunk", "LowercaseWanted", "MAX_DIM", "ReadOptions", "ReadStats", "Source"]

# No embedding is wider than this; a header or row saying more is corrupt (and would size
# buffers and parser schemas by it).
MAX_DIM = 100_000


class LowercaseWanted(Collection[str]):
    """A ``wanted`` set of lowercase words that any casing of a word matches (``"Paris" in w``
    when ``"paris"`` is a key): what align's ``lower`` case policy asks readers for. Iterating
    gives the lowercase keys, so a reader that matches raw bytes must lowercase them first."""

    def __init__(self, keys: Collection[str]) -> None:
        self._keys = keys

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word.lower() in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class Chunk:
    words: list[str]  # n words, unique across the whole stream
    vectors: np.ndarray  # (n, dim) float32


@dataclass
class ReadStats:
    rows_read: int = 0  # data rows seen (header excluded), duplicates and skipped rows included
    duplicates: int = 0  # rows dropped because their word appeared earlier
    bad_lines: int = 0  # rows skipped under on_bad_line="skip"
    examples: list[str] = field(default_factory=list)  # a few "line N: reason" for the report


@dataclass(frozen=True)
class ReadOptions:
    encoding_errors: str = "strict"  # "strict": bad UTF-8 is an error; "replace": U+FFFD
    on_bad_line: str = "error"  # "error" or "skip" (counted in stats.bad_lines)
    limit: int | None = None  # read at most this many data rows
    progress: bool = True  # show a progress bar (bytes, rows/s) on stderr
    tensor: str | None = None  # matrix+vocab formats: which tensor in a .safetensors file
    vocab_file: Path | None = None  # matrix+vocab formats: one token per line
    chunk_bytes: int = 8 << 20  # text formats: bytes parsed per step (bounds memory)


class Source(ABC):
    """One embedding file, opened for streaming."""

    path: Path
    format: str  # e.g. "glove", "word2vec-text", "word2vec-binary", "fasttext-bin", "npy"
    dim: int
    declared_count: int | None  # the header's row count, where the format has one
    stats: ReadStats
    has_subwords: bool = False  # True when subword_vectors() can compose OOV words

    @abstractmethod
    def iter_chunks(self, wanted: Collection[str] | None = None) -> Iterator[Chunk]:
        """Stream (words, vectors) in file order; only ``wanted`` words when given.

        Each call restarts from the beginning of the file and resets ``stats``.
        """

    def iter_words(self) -> Iterator[list[str]]:
        """Stream the words only (deduplicated, file order). Readers override this with a
        faster path that skips parsing the numbers."""
        for chunk in self.iter_chunks():
            yield chunk.words

    def subword_vectors(self, words: Sequence[str]) -> np.ndarray:
        """(len(words), dim) vectors composed from character n-grams (fastText models only)."""
        raise NotImplementedError(f"{self.format} files have no subword information")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles or loaded models."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
