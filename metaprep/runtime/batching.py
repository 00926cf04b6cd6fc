"""How a Model's call is cut into batches and run on several threads at once.

Texts of like length share a batch, so little of it is padding (``batches``); the batches then
run on ``workers`` threads, the calling thread among them (``BatchPool``), each batch on one
onnxruntime thread. Standard library and numpy only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from metaprep.errors import DataError
from metaprep.runtime.inputs import Text

__all__ = ["MAX_PADDING", "BatchPool", "batches", "text_sides"]

# the most padding a batch may hold, as a share of its cells: texts of a long-tailed length
# spread (fortunes: 2 to 500+ tokens) would otherwise pad the short ones of a batch to the
# longest one's length, the costliest part of serving them
MAX_PADDING = 0.25


def batches(order: np.ndarray, sizes: np.ndarray, step: int) -> list[np.ndarray]:
    """``order`` (texts sorted by size, ``sizes`` in that order) cut into batches of at most
    ``step`` texts, each ending early where the next text would pad the batch beyond
    MAX_PADDING of its cells (sizes in characters stand for tokens)."""
    cuts, start, total = [0], 0, 0
    for i, c in enumerate((sizes // 6 + 1).tolist()):  # about 6 characters a token
        count = i - start + 1
        if count > step or (count > 1 and count * c - (total + c) > MAX_PADDING * count * c):
            cuts.append(i)
            start, total = i, 0
        total += c
    cuts.append(len(order))
    return [order[a:b] for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


class BatchPool:
    """Runs a function over a call's batches on ``workers`` threads; threads sharing one Model
    share its pool (made at the first call of more than one batch)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """fn over items, on ``workers`` threads when there is more than one batch."""
        if self.workers <= 1 or len(items) <= 1:
            return list(map(fn, items))
        # the calling thread is one of the workers, and each takes the next item when it is
        # free: a long batch then holds up one thread, not the items dealt to it in advance
        # (fortunes' 255-text call, 2 threads: 83-88k -> 89-92k texts/s against pool.map)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers - 1,
                                                thread_name_prefix="metaprep-batch")
        results: list[Any] = [None] * len(items)
        todo, lock = iter(enumerate(items)), threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    got = next(todo, None)
                if got is None:
                    return
                results[got[0]] = fn(got[1])

        helpers = [self._pool.submit(work) for _ in range(min(self.workers, len(items)) - 1)]
        try:
            work()
        finally:
            wait(helpers)  # no batch outlives the call, even when one failed
        for h in helpers:
            h.result()  # a helper's error, as the caller's would be
        return results


def text_sides(texts: Sequence[Text], pair: bool) -> list[Sequence[str]]:
    """A call's texts checked: the texts, or for pairs the first texts and the second
    texts."""
    if isinstance(texts, (str, bytes)):  # a sequence too: a prediction per character
        raise DataError(f"give a list of texts, not one {type(texts).__name__}: "
                        "model.predict([text])")
    if not isinstance(texts, (Sequence, np.ndarray)) or getattr(texts, "ndim", 1) != 1:
        # None, a number, a generator, or a set or dict (no order to give the rows back in)
        raise DataError(f"give a list of texts, not {type(texts).__name__}: "
                        "model.predict([text, ...])")
    if pair:
        if not all(isinstance(t, tuple) and len(t) == 2 for t in texts):
            raise DataError("this model reads sentence pairs: give (text_a, text_b)")
        if not all(isinstance(t[0], str) and isinstance(t[1], str) for t in texts):  # type: ignore[index]
            raise DataError("a sentence pair is two texts (str)")
        return [[t[0] for t in texts], [t[1] for t in texts]]  # type: ignore[index]
    if set(map(type, texts)) - {str} and not all(isinstance(t, str) for t in texts):
        other = next(t for t in texts if not isinstance(t, str))
        raise DataError("this model reads single texts (str), not pairs" if isinstance(
            other, tuple) else f"texts must be str, not {type(other).__name__}")
    return [texts]  # type: ignore[list-item]
