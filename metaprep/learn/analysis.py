"""Where the attention goes: mean weight per source overall, by the word's training frequency, and
by which sources cover the word; plus the PNG plots of a run (matplotlib, Agg backend)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaprep.atomic import atomic_path, write_failure
from metaprep.learn.data import TaskData, bucket_batches, collate
from metaprep.learn.model import MetaEmbeddingClassifier

__all__ = ["FREQUENCY_BANDS", "attention_analysis", "plot_attention", "plot_learning_curves"]

# (name, lowest count, highest count) of a word in the training data
FREQUENCY_BANDS = (
    ("unseen", 0, 0), ("1", 1, 1), ("2-9", 2, 9), ("10-99", 10, 99), ("100+", 100, None),
)


def _band_of(freq: np.ndarray) -> np.ndarray:
    band = np.zeros(len(freq), dtype=np.int64)
    for b, (_, low, _) in enumerate(FREQUENCY_BANDS):
        band[freq >= low] = b
    return band


def _summary(sums: np.ndarray, counts: np.ndarray, names: list[str], sources: list[str],
             has_weights: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for g, name in enumerate(names):
        if counts[g] == 0:
            continue
        entry: dict[str, Any] = {"tokens": int(counts[g])}
        if has_weights:
            entry["mean_weight"] = {s: float(sums[g, k] / counts[g]) for k, s in enumerate(sources)}
        out[name] = entry
    return out


@torch.no_grad()
def attention_analysis(
    model: MetaEmbeddingClassifier, data: TaskData, train_counts: Counter[int], *,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Mean mixing weight per source over the tokens of ``data`` that some source covers:
    overall, by training-frequency band, by coverage pattern (which sources have the word).
    Methods without weights (concat, sum, single) get the token counts only."""
    was_training = model.training
    model.eval()
    cfg = model.cfg
    names = model.front.source_names  # the store's sources, then the learned one if any
    S = len(names)
    ids_all, w_all, p_all = [], [], []
    for index in bucket_batches(data.lengths(), batch_size):
        b = collate(data, index)
        for ids, lengths in ((b.ids, b.lengths), (b.ids_b, b.lengths_b)):
            if ids is None or lengths is None:
                continue
            enc = model.encode(ids, lengths)
            valid = torch.arange(ids.shape[1])[None, :] < lengths[:, None]
            present = model.front.presence(ids)[valid]  # (N,S)
            known = present.any(-1)  # tokens some source covers (the rest use the UNK vector)
            ids_all.append(ids[valid][known].numpy())
            p_all.append(present[known].numpy())
            if enc.weights is not None:
                w_all.append(enc.weights[valid][known].double().numpy())
    model.train(was_training)
    ids_np = np.concatenate(ids_all) if ids_all else np.zeros(0, dtype=np.int64)
    pres = np.concatenate(p_all) if p_all else np.zeros((0, S), dtype=bool)
    has_weights = bool(w_all)
    weights = np.concatenate(w_all) if has_weights else np.zeros((len(ids_np), S))

    freq = np.array([train_counts.get(int(i), 0) for i in ids_np], dtype=np.int64)
    band = _band_of(freq)
    pattern = (pres * (1 << np.arange(S))).sum(1)  # bit k: source k covers the word
    n_bands, n_pat = len(FREQUENCY_BANDS), 1 << S
    band_sums, band_counts = np.zeros((n_bands, S)), np.zeros(n_bands, dtype=np.int64)
    pat_sums, pat_counts = np.zeros((n_pat, S)), np.zeros(n_pat, dtype=np.int64)
    np.add.at(band_sums, band, weights)
    np.add.at(band_counts, band, 1)
    np.add.at(pat_sums, pattern, weights)
    np.add.at(pat_counts, pattern, 1)
    pat_names = ["+".join(s for k, s in enumerate(names) if p >> k & 1) for p in range(n_pat)]
    overall = _summary(weights.sum(0, keepdims=True), np.array([len(ids_np)]), ["all"],
                       names, has_weights)
    return {
        "method": cfg.method,
        "gating": cfg.gating,
        "mask_missing": cfg.mask_missing,
        "sources": names,
        "data": str(data.path),
        "has_weights": has_weights,
        "overall": overall.get("all", {"tokens": 0}),
        "by_frequency": _summary(band_sums, band_counts, [b[0] for b in FREQUENCY_BANDS],
                                 names, has_weights),
        "by_coverage": _summary(pat_sums, pat_counts, pat_names, names, has_weights),
    }


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            try:
                fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
            except OSError as exc:  # a full disk, a file-size limit: name the file
                raise write_failure(path, exc) from exc
    finally:
        plt.close(fig)


def plot_attention(report: dict[str, Any], path: str | Path) -> bool:
    """Grouped bars: mean weight per source, overall and per frequency band. False (no file)
    when the method has no weights."""
    if not report.get("has_weights"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {"all": report["overall"], **report["by_frequency"]}
    # a group without tokens (no dev token any source has, say) has no mean weight to draw
    groups = {g: v for g, v in groups.items() if "mean_weight" in v}
    if not groups:
        return False
    names = list(groups)
    sources = report["sources"]
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(names), 3.5))
    width = 0.8 / len(sources)
    for k, s in enumerate(sources):
        vals = [groups[g]["mean_weight"][s] for g in names]
        ax.bar(np.arange(len(names)) + k * width, vals, width, label=s)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{g}\n({groups[g]['tokens']} tok)" for g in names], fontsize=8)
    ax.set_xlabel("word frequency in the training data")
    ax.set_ylabel("mean attention weight")
    ax.set_title(f"{report['method']}: attention by source")
    ax.legend(fontsize=8)
    _save(fig, Path(path))
    return True


def plot_learning_curves(history: list[dict[str, Any]], path: str | Path) -> None:
    """Training loss, and train / dev accuracy, per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o")
    left.set_xlabel("epoch")
    left.set_ylabel("train loss")
    right.plot(epochs, [h["train_accuracy"] for h in history], marker="o", label="train")
    right.plot(epochs, [h["dev_accuracy"] for h in history], marker="o", label="dev")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend()
    fig.tight_layout()
    _save(fig, Path(path))
