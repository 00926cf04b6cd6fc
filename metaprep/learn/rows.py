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
from pathlib import Path
from typing import NamedTuple, overload

import numpy as np

from metaprep.learn.scratch import drop

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


class _Column:
    """One growing 1-D array: appended in memory, or with ``path`` written to that file every
    ~4 MB and memory-mapped at the end (the file then unlinked: learn/scratch.py)."""

    _SPILL = 1 << 20  # items held before they are written

    def __init__(self, typecode: str, dtype: type, path: Path | None, first: Sequence[int] = ()
                 ) -> None:
        self.buf: array[int] = array(typecode, first)
        self.dtype, self.path, self.written = dtype, path, 0
        self.file = open(path, "wb") if path is not None else None  # noqa: SIM115

    def __len__(self) -> int:
        return self.written + len(self.buf)

    def extend(self, items: Iterable[int]) -> None:
        self.buf.extend(items)
        if self.file is not None and len(self.buf) >= self._SPILL:
            self._spill()

    def append(self, item: int) -> None:
        self.buf.append(item)
        if self.file is not None and len(self.buf) >= self._SPILL:
            self._spill()

    def _spill(self) -> None:
        if self.file is None:
            return
        try:
            self.file.write(self.buf.tobytes())
        except OSError:  # a full disk, a file-size limit: held in memory from here on
            self._to_memory()
            return
        self.written += len(self.buf)
        self.buf = array(self.buf.typecode)

    def _to_memory(self) -> None:
        done: np.ndarray = np.fromfile(self.path, dtype=self.dtype, count=self.written) \
            if self.path is not None and self.written else np.zeros(0, self.dtype)
        self.buf = array(self.buf.typecode, done.tobytes()) + self.buf
        self.discard()
        self.file = self.path = None
        self.written = 0

    def finish(self, relabel: np.ndarray | None = None) -> np.ndarray:
        """The whole array (``relabel``: each value v replaced by relabel[v])."""
        self._spill()  # the rest written (or, that failing, everything back in memory)
        if self.file is None or self.path is None:
            out: np.ndarray = np.frombuffer(self.buf, dtype=self.dtype).copy() if len(self.buf) \
                else np.zeros(0, self.dtype)
            return out if relabel is None else relabel[out]
        try:
            self.file.close()
            n = self.written
            if n and relabel is not None:  # rewritten in place, block by block
                rw = np.memmap(self.path, dtype=self.dtype, mode="r+", shape=(n,))
                for start in range(0, n, self._SPILL):
                    rw[start : start + self._SPILL] = relabel[rw[start : start + self._SPILL]]
                rw.flush()
                del rw
            return np.memmap(self.path, dtype=self.dtype, mode="c", shape=(n,)) if n \
                else np.zeros(0, self.dtype)
        finally:
            self.discard()

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.path is not None:
            drop(self.path)


class RowsBuilder:
    """Examples appended one at a time into growing arrays (no list per example). With
    ``folder`` (a scratch folder, learn/scratch.py) the arrays go to files there and come back
    memory-mapped: the examples then cost page cache, not the process's memory."""

    def __init__(self, folder: Path | None = None) -> None:
        def column(name: str, typecode: str, dtype: type, first: Sequence[int] = ()
                   ) -> _Column:
            return _Column(typecode, dtype, folder / name if folder else None, first)

        self._ids = [column("ids0", "i", np.int32), column("ids1", "i", np.int32)]
        self._starts = [column("starts0", "q", np.int64, [0]),
                        column("starts1", "q", np.int64, [0])]
        self._labels = column("labels", "q", np.int64)
        self._lines = column("lines", "q", np.int64)
        self._pair: bool | None = None

    def __len__(self) -> int:
        return len(self._labels)

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

    def build(self, relabel: np.ndarray | None = None) -> ExampleRows:
        """The examples (``relabel``: label v becomes relabel[v])."""
        try:
            sides = [(self._ids[k].finish(), self._starts[k].finish())
                     for k in range(2 if self._pair else 1)]
            return ExampleRows(sides, self._labels.finish(relabel), self._lines.finish())
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the files of a build abandoned (bad input)."""
        for c in (*self._ids, *self._starts, self._labels, self._lines):
            c.discard()
