"""A task's encoded examples held in flat arrays: every example's ids end to end (int32) with
where each starts, its label and its line. A list of per-example Python lists cost about 615
bytes an example (45 a token) on a Kaggle-like task, these about 5 a token, so 1.3M questions
take about 0.1 GB rather than 0.8. ``ExampleRows`` is a read-only sequence of ``Example``, so
code that reads examples one at a time is unchanged; batches read the arrays (data.collate).
numpy only.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import NamedTuple, overload

import numpy as np

__all__ = ["Example", "ExampleRows", "RowsBuilder"]


class Example(NamedTuple):
    ids: list[int]
    ids_b: list[int] | None  # second sentence of a pair
    label: int
    line: int  # where it came from, for messages


class ExampleRows(Sequence[Example]):
    """Examples in flat arrays; ``sides[k]`` is (ids of sentence k end to end, starts (N+1,))."""

    def __init__(self, sides: list[tuple[np.ndarray, np.ndarray]], labels: np.ndarray,
                 lines: np.ndarray) -> None:
        self.sides, self.labels, self.lines = sides, labels, lines

    @classmethod
    def of(cls, examples: Iterable[Example]) -> ExampleRows:
        rows = RowsBuilder()
        for e in examples:
            rows.append(e.ids, e.ids_b, e.label, e.line)
        return rows.build()

    def __len__(self) -> int:
        return len(self.labels)

    def _ids(self, side: int, i: int) -> list[int]:
        flat, starts = self.sides[side]
        return flat[starts[i] : starts[i + 1]].tolist()  # type: ignore[no-any-return]

    @overload
    def __getitem__(self, i: int) -> Example: ...

    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...

    def __getitem__(self, i: int | slice) -> Example | list[Example]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        k = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= k < n:
            raise IndexError("example index out of range")
        return Example(self._ids(0, k), self._ids(1, k) if len(self.sides) > 1 else None,
                       int(self.labels[k]), int(self.lines[k]))

    def lengths(self, side: int) -> np.ndarray:
        starts = self.sides[side][1]
        return np.diff(starts)


class RowsBuilder:
    """Examples appended one at a time into growing arrays (no list per example)."""

    def __init__(self) -> None:
        self._ids: list[array[int]] = [array("i"), array("i")]
        self._starts: list[array[int]] = [array("q", [0]), array("q", [0])]
        self._labels: array[int] = array("q")
        self._lines: array[int] = array("q")
        self._pair: bool | None = None

    def append(self, ids: Sequence[int], ids_b: Sequence[int] | None, label: int,
               line: int) -> None:
        if self._pair is None:
            self._pair = ids_b is not None
        for side, seq in enumerate((ids, ids_b)):
            if side == 0 or self._pair:
                self._ids[side].extend(seq or ())
                self._starts[side].append(len(self._ids[side]))
        self._labels.append(label)
        self._lines.append(line)

    def build(self) -> ExampleRows:
        sides = [(np.frombuffer(self._ids[k], dtype=np.int32).copy() if len(self._ids[k])
                  else np.zeros(0, np.int32), np.frombuffer(self._starts[k], dtype=np.int64).copy())
                 for k in range(2 if self._pair else 1)]
        return ExampleRows(sides, np.array(self._labels, dtype=np.int64),
                           np.array(self._lines, dtype=np.int64))
