"""Scoring a trained run on labelled data: accuracy, macro-F1 and a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaprep.errors import ConfigError, DataError, ModelError
from metaprep.learn.config import OPTIONS
from metaprep.learn.data import (
    LabelMap,
    TaskData,
    bucket_batches,
    collate,
    load_labelsets,
    load_task,
)
from metaprep.learn.multilabel import format_multilabel, multilabel_metrics
from metaprep.learn.rundir import Run
from metaprep.taskdata import Columns

__all__ = [
    "classification_metrics",
    "ensemble_scores",
    "evaluate_run",
    "format_report",
    "model_logits",
    "predict",
    "predict_sigmoid",
]

# evaluate's batches: as large as training's may be
MAX_BATCH = int(OPTIONS["batch_size"].metadata["spec"].high)
MAX_CONFUSION = 100  # labels up to which metrics keep the whole confusion matrix
TOP_CONFUSIONS = 20  # the most frequent confusions kept in the metrics


@torch.no_grad()
def model_logits(model: torch.nn.Module, data: TaskData, batch_size: int, device: str, *,
                 run: str | Path | None = None) -> np.ndarray:
    """(N, C) float32 logits, in file order (batched by length). A NaN or infinite one is a
    ModelError naming ``run`` (the model scored) and the line: weights that overflow float32
    would otherwise predict one class for everything and be scored as if they worked."""
    was_training = model.training
    model.eval()
    out = np.empty((len(data), 0), dtype=np.float32)
    for index in bucket_batches(data.lengths(), batch_size):
        b = collate(data, index).to(device)
        logits = model(b.ids, b.lengths, b.ids_b, b.lengths_b).float().cpu().numpy()
        if out.shape[1] == 0:
            out = np.empty((len(data), logits.shape[1]), dtype=np.float32)
        out[index] = logits
    model.train(was_training)
    bad = ~np.isfinite(out).all(-1)
    if bad.any():
        first = data.examples[int(np.argmax(bad))].line
        raise ModelError(f"the model gives NaN or infinite scores for {int(bad.sum())} of "
                         f"{len(data)} examples (the first on line {first} of {data.path}): "
                         "its weights overflow float32", path=run,
                         hint="a damaged or diverged run: train it again, with a lower --lr")
    return out


def predict(
    model: torch.nn.Module, data: TaskData, *, batch_size: int = 256, device: str = "cpu",
    run: str | Path | None = None
) -> np.ndarray:
    """Predicted class id for every example, in file order (``run``: named in errors)."""
    return model_logits(model, data, batch_size, device, run=run).argmax(-1).astype(np.int64)


def predict_sigmoid(
    model: torch.nn.Module, data: TaskData, *, batch_size: int = 256, device: str = "cpu",
    run: str | Path | None = None
) -> np.ndarray:
    """(N, C) sigmoid probabilities per label (multi-label runs), in file order."""
    logits = torch.from_numpy(model_logits(model, data, batch_size, device, run=run))
    return torch.sigmoid(logits).numpy()


def classification_metrics(
    gold: np.ndarray, pred: np.ndarray, labels: Sequence[str]
) -> dict[str, Any]:
    """accuracy, macro-F1 (over labels that occur in gold or pred), per-label P/R/F1, the
    confusion matrix (rows gold, columns predicted, in ``labels`` order; up to MAX_CONFUSION
    labels, else None: n^2 numbers, 3 GB at 20,000 labels) and the most frequent confusions
    (``confusions``: [gold, predicted, count], off the diagonal). Memory grows with the examples
    and the labels, never with their product."""
    n = len(labels)
    pairs, counts = np.unique(np.asarray(gold, dtype=np.int64) * n + pred, return_counts=True)
    g, p = pairs // n, pairs % n
    right = g == p
    tp = np.bincount(g[right], weights=counts[right], minlength=n).astype(np.float64)
    pred_count = np.bincount(p, weights=counts, minlength=n).astype(np.float64)
    gold_count = np.bincount(g, weights=counts, minlength=n).astype(np.float64)
    precision = np.divide(tp, pred_count, out=np.zeros(n), where=pred_count > 0)
    recall = np.divide(tp, gold_count, out=np.zeros(n), where=gold_count > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    seen = (gold_count + pred_count) > 0
    confusion = None
    if n <= MAX_CONFUSION:
        matrix = np.zeros((n, n), dtype=np.int64)
        matrix[g, p] = counts
        confusion = matrix.tolist()
    wrong = np.flatnonzero(~right)
    top = wrong[np.argsort(-counts[wrong], kind="stable")[:TOP_CONFUSIONS]]
    return {
        "n": int(len(gold)),
        "accuracy": float(tp.sum() / max(1, len(gold))),
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "per_label": {
            label: {"precision": float(precision[i]), "recall": float(recall[i]),
                    "f1": float(f1[i]), "support": int(gold_count[i])}
            for i, label in enumerate(labels)
        },
        "labels": list(labels),
        "confusion": confusion,
        "confusions": [[labels[g[i]], labels[p[i]], int(counts[i])] for i in top],
    }


def evaluate_run(
    run_dir: str | Path,
    data_path: str | Path,
    *,
    store_path: str | Path | None = None,
    batch_size: int = 256,
    verify_store: bool = True,
    encoding: str = "utf-8",
    progress: bool = True,
    columns: Columns | None = None,
) -> dict[str, Any]:
    """Load a run, read ``data_path`` (its labels must be among the run's), return the metrics.
    ``columns``: the data's column names [the ones the run was trained with]."""
    from metaprep.learn.ensemble import Ensemble, is_ensemble, load_members, member_dirs

    if isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH:
        raise ConfigError(f"--batch-size must be from 1 to {MAX_BATCH:,}, not {batch_size}")
    if is_ensemble(run_dir):  # the members' averaged probabilities
        runs, members = load_members(member_dirs(run_dir), store=store_path,
                                     verify_store=verify_store, progress=progress)
        for other in runs[1:]:
            other.close()
    else:
        runs, members = [Run.open(run_dir, store=store_path, verify_store=verify_store)], []
    with runs[0] as run:
        cols = run.data.columns if columns is None else columns
        if run.config.task == "multilabel":
            data, _ = load_labelsets(data_path, run.encoder(), labels=LabelMap(run.labels),
                                     label_sep=run.config.label_sep, encoding=encoding,
                                     progress=progress, columns=cols)
        else:
            data, _ = load_task(data_path, run.encoder(), labels=LabelMap(run.labels),
                                encoding=encoding, progress=progress, columns=cols)
        if data.pair != run.config.pair:
            want = "sentence pairs (text_a,text_b,label)" if run.config.pair else "single sentences"
            raise DataError(f"the run was trained on {want}", path=data_path)
        model = Ensemble(members) if members else run.load_model(progress=progress)
    labels = run.labels
    if data.targets is not None:
        probs = predict_sigmoid(model, data, batch_size=batch_size, run=run_dir)
        metrics = multilabel_metrics(data.targets, probs, labels, run.thresholds())
    else:
        pred = predict(model, data, batch_size=batch_size, run=run_dir)
        gold = data.examples.labels
        metrics = classification_metrics(gold, pred, labels)
    metrics["data"] = str(data_path)
    metrics["run"] = str(run_dir)
    return metrics


def format_report(metrics: dict[str, Any], *, top: int = 5) -> str:
    """Human summary: accuracy, macro-F1, per-label F1 and the most frequent confusions."""
    if metrics.get("task") == "multilabel":
        return format_multilabel(metrics)
    lines = [
        f"examples  {metrics['n']}",
        f"accuracy  {metrics['accuracy']:.4f}",
        f"macro-F1  {metrics['macro_f1']:.4f}",
        "",
        f"{'label':<20} {'prec':>6} {'rec':>6} {'f1':>6} {'support':>8}",
    ]
    for label, m in metrics["per_label"].items():
        lines.append(
            f"{label[:20]:<20} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
            f"{m['support']:8d}"
        )
    errors = metrics["confusions"]
    if errors:
        lines += ["", "most frequent confusions (gold -> predicted):"]
        for g, p, count in errors[:top]:
            lines.append(f"  {g} -> {p}: {count}")
    return "\n".join(lines)


def ensemble_scores(dirs: list[Path], splits: dict[str, Any], *,
                    progress: bool = False) -> dict[str, Any]:
    """The averaged members' metrics on each split (``splits``: name -> TaskData or None)."""
    from metaprep.learn.ensemble import Ensemble, load_members

    # the store re-hashed (against the first member's record): the members' tables are read
    # from the path they recorded, which might hold another store by now
    runs, models = load_members(dirs, verify_store=True, progress=progress)
    try:
        ensemble, labels = Ensemble(models), runs[0].labels
        out: dict[str, Any] = {}
        for name, data in splits.items():
            if data is None:
                out[name] = None
                continue
            gold = data.examples.labels
            pred = predict(ensemble, data, run=dirs[0].parent.parent)
            out[name] = classification_metrics(gold, pred, labels)
        return out
    finally:
        for run in runs:
            run.close()
