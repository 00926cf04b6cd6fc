"""What the batch engines (runtime/spark.py, runtime/ray.py) share: a batch of text columns -> the
model's outputs as columns, one value per row.

Outputs, by name (``OUTPUTS``): ``label`` (str, the most probable label), ``probability``
(float32, its probability), ``probabilities`` (float32 (C,), every label's, in the order of
``Model.labels``), ``embedding`` (float32 (E,), the sentence vector ``Model.embed`` gives).

A null text (None, or NaN as pandas writes a missing string) gives a null row: label None and
NaN for the numbers (each engine turns them into its nulls), so one missing value does not stop
a job of millions of rows. Anything else that is not a str is refused by the Model, as it is
everywhere else.

Imports numpy and metaprep.runtime.model only (the engines' own packages are imported by their
modules, inside the functions that need them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from metaprep.errors import ModelError
from metaprep.runtime.model import Model

__all__ = ["OUTPUTS", "check_model", "check_outputs", "score"]

OUTPUTS = ("label", "probability", "probabilities", "embedding")
_FROM_PROBS = ("label", "probability", "probabilities")


def check_outputs(outputs: Sequence[str]) -> tuple[str, ...]:
    """The outputs asked for, checked where the job is built (before any executor starts)."""
    if isinstance(outputs, str):
        outputs = (outputs,)
    got = tuple(outputs)
    unknown = [o for o in got if o not in OUTPUTS]
    if not got or unknown or len(set(got)) != len(got):
        raise ValueError(f"outputs must be one or more of {', '.join(OUTPUTS)}, each once; "
                         f"got {list(got)}")
    return got


def check_model(model: Model, outputs: Sequence[str]) -> None:
    """Refuse, as soon as a worker has the model, outputs this model cannot give."""
    if model.multilabel and {"label", "probability"} & set(outputs):
        raise ModelError("a multi-label model has no single label per text: ask for "
                         "outputs=('probabilities',) and compare with Model.thresholds",
                         path=model.path)
    if model.pair and "embedding" in outputs:
        raise ModelError("a sentence-pair model gives no embedding of a pair: leave out "
                         "'embedding'", path=model.path)


def _nulls(column: np.ndarray) -> np.ndarray:
    """(N,) bool: the rows whose value is missing (None, or a float NaN from pandas)."""
    return np.fromiter((v is None or (isinstance(v, float) and v != v) for v in column),
                       dtype=bool, count=len(column))


def score(model: Model, columns: Sequence[np.ndarray], outputs: Sequence[str]
          ) -> dict[str, np.ndarray]:
    """``columns``: one array of texts, or two (first and second texts) for a pair model.
    Returns each output as an array of len(rows): (N,) for label and probability, (N, C) or
    (N, E) for probabilities and embedding."""
    n = len(columns[0])
    null = np.zeros(n, dtype=bool)
    for col in columns:
        null |= _nulls(col)
    keep = np.flatnonzero(~null)
    if len(columns) == 1:
        texts: list = [columns[0][k] for k in keep.tolist()]
    else:
        a, b = columns
        texts = [(a[k], b[k]) for k in keep.tolist()]
    out: dict[str, np.ndarray] = {}
    if set(outputs) & set(_FROM_PROBS):
        probs = _spread(model.predict_proba(texts), keep, n)  # (N, C), NaN rows for nulls
        best = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1)
        if "label" in outputs:
            labels = np.asarray(model.labels, dtype=object)[best]
            labels[null] = None
            out["label"] = labels
        if "probability" in outputs:
            out["probability"] = probs[np.arange(n), best]
        if "probabilities" in outputs:
            out["probabilities"] = probs
    if "embedding" in outputs:
        out["embedding"] = _spread(model.embed(texts), keep, n)  # (N, E)
    return {name: out[name] for name in outputs}


def _spread(rows: np.ndarray, keep: np.ndarray, n: int) -> np.ndarray:
    """``rows`` (one per kept row) placed at ``keep`` in an (n, width) array of NaN."""
    if len(keep) == n:
        return rows
    full = np.full((n, rows.shape[1]), np.nan, dtype=np.float32)
    full[keep] = rows
    return full
