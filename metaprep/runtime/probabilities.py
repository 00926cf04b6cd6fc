"""One text's {label: probability}, read from its row of the probability matrix on access.

``Model.predict`` returns one of these per text instead of a dict: building a dict of every
label for every row cost more than running the model on a many-label task (57 labels:
benchmarks/results/text-path.md), and most callers read the label alone or a few
probabilities. It is a read-only ``Mapping``: ``p["pos"]``, ``p.items()``, ``max(p, key=p.get)``
and ``p == {...}`` work as on a dict; ``dict(p)`` (or ``p.to_dict()``) makes a real one, for
``json.dumps`` for example. Also the picks made from a row: the k most probable labels, and a
multi-label model's labels over their thresholds. Pure numpy: the runtime imports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

__all__ = ["Probabilities", "check_top_k", "over_threshold", "top_k_order"]


class Probabilities(Mapping[str, float]):
    """``row`` (C,) float32, a view into the call's (N, C) matrix; ``index`` label -> column,
    shared by every row of a call (in the model's label order, which iteration follows)."""

    __slots__ = ("_index", "_row")

    def __init__(self, row: np.ndarray, index: Mapping[str, int]) -> None:
        self._row = row
        self._index = index

    def __getitem__(self, label: str) -> float:
        return float(self._row[self._index[label]])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def to_dict(self) -> dict[str, float]:
        """A real dict, in label order (built in C: one tolist, one zip)."""
        return dict(zip(self._index, self._row.tolist(), strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.to_dict() == dict(other.items())

    __hash__ = None  # type: ignore[assignment]  # equal to a dict, so unhashable as one

    def __repr__(self) -> str:
        return repr(self.to_dict())

    def __reduce__(self) -> tuple[type, tuple[dict[str, float]]]:
        # pickled as a plain dict: no numpy row or shared index travels with it
        return dict, (self.to_dict(),)


# --- picks from a row ----------------------------------------------------------------------------
def check_top_k(top_k: int | None) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise ValueError(f"top_k must be a whole number of at least 1, not {top_k!r}")


def top_k_order(probs: np.ndarray, k: int) -> np.ndarray:
    """(N, k) column indexes of each row's k largest values, largest first; ties keep the lower
    index first, as argmax does (a stable sort: a few dozen labels a row cost little)."""
    if k == 1:  # argmax alone: a sort of every row cost more than the model (57 labels)
        return np.argmax(probs, axis=1)[:, None]
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def over_threshold(labels: Sequence[str], p: np.ndarray, thresholds: np.ndarray,
                   top_k: int | None = None) -> tuple[list[str], dict[str, float]]:
    """A multi-label row's labels that reach their thresholds, most probable first (at most
    ``top_k``), and their probabilities."""
    picked = sorted((int(j) for j in np.flatnonzero(p >= thresholds)), key=lambda j: -p[j])
    picked = picked[:top_k]
    return [labels[j] for j in picked], {labels[j]: float(p[j]) for j in picked}
