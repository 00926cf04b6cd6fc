"""The piece path's wanted-line selection of a text source: with a target vocabulary, each
line's word is found first and only the wanted lines' numbers are parsed (a mixin of
``TextSource``, which supplies ``_quick_word``, ``_decode``, ``_parse_lines`` and ``stats``)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from metaprep.prep.readers.base import LowercaseWanted

__all__ = ["WantedLines"]


class WantedLines:
    stats: Any
    _spaced_wanted: bool

    def _quick_word(self, line: bytes) -> bytes | None:
        raise NotImplementedError

    def _decode(self, word: bytes, line_no: int) -> str:
        raise NotImplementedError

    def _parse_lines(self, lines: list[bytes], line0: int,
                     rows: list[int]) -> tuple[list[str], np.ndarray]:
        raise NotImplementedError

    def _parse_wanted(
        self, piece: bytes, line0: int, wanted: Collection[str], wanted_bytes: set[bytes] | None
    ) -> tuple[list[str], np.ndarray, int]:
        """Find each line's word first; parse numbers only on wanted (or irregular) lines."""
        lines = piece.split(b"\n")
        lower = isinstance(wanted, LowercaseWanted)  # any casing of its (lowercase) words
        if wanted_bytes is not None and not self._spaced_wanted:
            keep, odd, rows = self._select_by_prefix(lines, wanted_bytes, lower=lower)
        else:
            keep, odd, rows = self._select_by_word(lines, line0, wanted,
                                                   None if lower else wanted_bytes)
        self.stats.rows_read += rows
        words, vectors = self._parse_lines(lines, line0, keep)
        if odd:  # an irregular line's real word is only known now
            mask = [w in wanted for w in words]
            words = [w for w, m in zip(words, mask, strict=True) if m]
            vectors = vectors[np.asarray(mask, dtype=bool)]
        return words, vectors, len(lines) - 1

    def _select_by_word(
        self, lines: list[bytes], line0: int, wanted: Collection[str],
        wanted_bytes: set[bytes] | None,
    ) -> tuple[list[int], bool, int]:
        """Lines to parse: regular lines whose word is wanted, and every irregular line."""
        keep: list[int] = []
        odd = False
        rows = 0
        quick_word = self._quick_word
        for i, line in enumerate(lines):
            word = quick_word(line)
            if word is None:
                if line.strip():
                    rows += 1
                    keep.append(i)  # irregular: the exact path decides its word and validity
                    odd = True
                continue
            rows += 1
            if wanted_bytes is not None:
                if word in wanted_bytes:
                    keep.append(i)
            elif self._decode(word, line0 + i) in wanted:
                keep.append(i)
        return keep, odd, rows

    def _select_by_prefix(
        self, lines: list[bytes], wanted_bytes: set[bytes], *, lower: bool = False
    ) -> tuple[list[int], bool, int]:
        """When no wanted word has a space, a line can only be wanted if the text before its
        first space is (lowercased, with ``lower``), so the other lines need no field count
        (the bulk of the time)."""
        keep: list[int] = []
        odd = False
        rows = 0
        quick_word = self._quick_word
        for i, line in enumerate(lines):
            sp = line.find(b" ")
            if sp > 0:
                rows += 1
                key = line[:sp]
                if lower:
                    key = (key.lower() if key.isascii()
                           else key.decode("utf-8", "replace").lower().encode("utf-8"))
                if key in wanted_bytes:
                    keep.append(i)
                    odd = odd or quick_word(line) is None
            elif line.strip():  # no space at all, or one first: let the exact path judge it
                rows += 1
                keep.append(i)
                odd = True
        return keep, odd, rows
