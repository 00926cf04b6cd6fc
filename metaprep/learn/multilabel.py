"""Multi-label scores and thresholds, numpy only (training, evaluation and the export's checks).

    gold  (N, C) 0/1: example i has label j         probs (N, C) sigmoid probabilities
    multilabel_metrics(gold, probs, labels, thresholds) -> the evaluate JSON
    tune_thresholds(gold, probs) -> Thresholds(global_, per_label)

ROC-AUC is the Mann-Whitney statistic over average ranks: exact, with ties counted one half. A
label without positives or without negatives in the data has no AUC (None) and is left out of
the mean; a label absent from the data and never predicted is left out of macro-F1, as in the
single-label report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLD",
    "SELECT_METRICS",
    "Thresholds",
    "format_multilabel",
    "multilabel_metrics",
    "roc_auc",
    "select_score",
    "tune_thresholds",
]

DEFAULT_THRESHOLD = 0.5  # before tuning, and for a label the dev set cannot tune
SELECT_METRICS = ("micro_f1", "macro_f1", "mean_auc")


@dataclass(frozen=True)
class Thresholds:
    """A probability threshold per label (tuned on dev), and the global one: the best single
    threshold for micro-F1, used for labels dev has no positive of."""

    global_: float
    per_label: tuple[float, ...]

    def array(self) -> np.ndarray:
        return np.asarray(self.per_label, dtype=np.float64)

    def to_dict(self, labels: Sequence[str]) -> dict[str, Any]:
        return {"global": self.global_,
                "per_label": dict(zip(labels, self.per_label, strict=True))}

    @classmethod
    def fixed(cls, count: int, value: float = DEFAULT_THRESHOLD) -> Thresholds:
        return cls(value, (value,) * count)


def roc_auc(gold: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve of one label; None without both classes."""
    gold = np.asarray(gold).astype(bool)
    pos, neg = int(gold.sum()), int((~gold).sum())
    if pos == 0 or neg == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[gold].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(xs)) + 1]
    ends = np.r_[starts[1:], len(xs)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros(np.shape(tp)), where=denom > 0)


def _best_cut(gold: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of ``probs >= threshold`` against ``gold`` (1-D); the
    threshold is the midpoint between the last score taken and the next one."""
    order = np.argsort(-probs, kind="mergesort")
    p, g = probs[order], gold[order].astype(np.float64)
    tp = np.cumsum(g)
    fp = np.cumsum(1 - g)
    fn = g.sum() - tp
    last = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]  # cut after a run of equal scores
    f1 = _f1(tp[last], fp[last], fn[last])
    k = int(np.argmax(f1))
    below = p[last[k] + 1] if last[k] + 1 < len(p) else 0.0
    return float((p[last[k]] + below) / 2), float(f1[k])


def tune_thresholds(gold: np.ndarray, probs: np.ndarray) -> Thresholds:
    """Per label, the threshold that maximises its F1 on this data; the global threshold
    maximises micro-F1 over all cells. Labels without a positive here take the global one."""
    gold = np.asarray(gold).astype(bool)
    probs = np.asarray(probs, dtype=np.float64)
    if gold.size == 0:
        return Thresholds.fixed(gold.shape[1] if gold.ndim == 2 else 0)
    global_, _ = _best_cut(gold.ravel(), probs.ravel())
    per = []
    for j in range(gold.shape[1]):
        per.append(_best_cut(gold[:, j], probs[:, j])[0] if gold[:, j].any() else global_)
    return Thresholds(round(global_, 6), tuple(round(t, 6) for t in per))


def multilabel_metrics(gold: np.ndarray, probs: np.ndarray, labels: Sequence[str],
                       thresholds: Thresholds | None = None) -> dict[str, Any]:
    """The evaluate JSON for a multi-label task (``accuracy`` is the subset accuracy)."""
    gold = np.asarray(gold).astype(bool)
    probs = np.asarray(probs, dtype=np.float64)
    t = thresholds or Thresholds.fixed(len(labels))
    pred = probs >= t.array()[None, :]
    tp = (gold & pred).sum(0).astype(np.float64)
    fp = (~gold & pred).sum(0).astype(np.float64)
    fn = (gold & ~pred).sum(0).astype(np.float64)
    precision = np.divide(tp, tp + fp, out=np.zeros(len(labels)), where=tp + fp > 0)
    recall = np.divide(tp, tp + fn, out=np.zeros(len(labels)), where=tp + fn > 0)
    f1 = _f1(tp, fp, fn)
    seen = (tp + fp + fn) > 0
    aucs = [roc_auc(gold[:, j], probs[:, j]) for j in range(len(labels))]
    known = [a for a in aucs if a is not None]
    n = len(gold)
    subset = float(np.mean(np.all(gold == pred, axis=1))) if n else 0.0
    return {
        "task": "multilabel",
        "n": int(n),
        "accuracy": subset,
        "subset_accuracy": subset,
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())),
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "mean_auc": float(np.mean(known)) if known else None,
        "hamming_loss": float(np.mean(gold != pred)) if gold.size else 0.0,
        "no_label_examples": int((~gold.any(axis=1)).sum()),
        "per_label": {
            label: {"precision": float(precision[j]), "recall": float(recall[j]),
                    "f1": float(f1[j]), "support": int(tp[j] + fn[j]), "auc": aucs[j],
                    "threshold": float(t.per_label[j])}
            for j, label in enumerate(labels)
        },
        "labels": list(labels),
        "thresholds": t.to_dict(labels),
    }


def select_score(metrics: dict[str, Any], metric: str) -> float:
    """The dev figure a run selects its best epoch by (a missing AUC counts as 0)."""
    value = metrics.get(metric)
    return float(value) if value is not None else 0.0


def format_multilabel(metrics: dict[str, Any]) -> str:
    """Human summary of ``multilabel_metrics``."""
    auc = metrics["mean_auc"]
    lines = [
        f"examples        {metrics['n']} ({metrics['no_label_examples']} with no label)",
        f"micro-F1        {metrics['micro_f1']:.4f}",
        f"macro-F1        {metrics['macro_f1']:.4f}",
        f"mean ROC-AUC    {'n/a' if auc is None else f'{auc:.4f}'}",
        f"subset accuracy {metrics['subset_accuracy']:.4f}",
        f"Hamming loss    {metrics['hamming_loss']:.4f}",
        "",
        f"{'label':<24} {'prec':>6} {'rec':>6} {'f1':>6} {'auc':>6} {'thr':>5} {'support':>8}",
    ]
    for label, m in metrics["per_label"].items():
        a = "   n/a" if m["auc"] is None else f"{m['auc']:6.3f}"
        lines.append(f"{label[:24]:<24} {m['precision']:6.3f} {m['recall']:6.3f} "
                     f"{m['f1']:6.3f} {a} {m['threshold']:5.2f} {m['support']:8d}")
    return "\n".join(lines)
