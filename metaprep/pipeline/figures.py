"""The key figures a pipeline summary shows for each stage, read back from the stage's outputs
(so a skipped stage can show them too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["dir_size", "stage_figures"]


def dir_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _align(out: Path) -> dict[str, Any]:
    from metaprep.prep.store import Store

    store_path = out / "store.h5"
    if not store_path.exists():
        return {}
    with Store(store_path) as store:
        cov = {n: round(float(store.present(n).mean()), 3) for n in store.sources}
        return {"vocab": store.vocab_size, "coverage": cov,
                "size_mb": round(store_path.stat().st_size / 1e6, 2)}


def _train(out: Path) -> dict[str, Any]:
    from metaprep.errors import MetaprepError
    from metaprep.learn.ensemble import ensemble_metrics, is_ensemble
    from metaprep.learn.rundir import Run

    try:  # the store is not opened for this
        metrics = (ensemble_metrics(out / "run") if is_ensemble(out / "run")
                   else Run.open(out / "run").metrics)
    except MetaprepError:  # a run killed early or damaged: no figures, not a failed summary
        return {}
    if not metrics:
        return {}
    figures: dict[str, Any] = {}
    for key in ("best_dev_accuracy", "test_accuracy"):
        if isinstance(metrics.get(key), (int, float)):
            figures[key.replace("_accuracy", "_acc")] = round(float(metrics[key]), 4)
    dev = metrics.get("dev")
    if isinstance(dev, dict) and dev.get("task") == "multilabel":  # subset accuracy says little
        for key in ("micro_f1", "mean_auc"):
            if isinstance(dev.get(key), (int, float)):
                figures[f"dev_{key}"] = round(float(dev[key]), 4)
    epochs = metrics.get("epochs") or []
    if not figures and epochs:  # still training: the best dev accuracy so far
        devs = [float(e["dev_accuracy"]) for e in epochs
                if isinstance(e, dict) and isinstance(e.get("dev_accuracy"), (int, float))]
        if devs:
            figures["best_dev_acc"] = round(max(devs), 4)
        figures["epochs"] = len(epochs)
    return figures


def _export(out: Path) -> dict[str, Any]:
    from metaprep.errors import ModelError
    from metaprep.runtime.modeldir import read_manifest

    figures: dict[str, Any] = {"model_mb": round(dir_size(out / "model") / 1e6, 2)}
    try:
        checks = read_manifest(out / "model").checks
    except ModelError:
        return figures
    parity = checks.parity.get("model")
    if parity is not None and "logits" in parity.max_abs_diff:
        figures["parity_logits_max_diff"] = parity.max_abs_diff["logits"]
    if checks.accuracy is not None:
        name = "acc" if checks.accuracy.metric == "accuracy" else checks.accuracy.metric
        figures[f"onnx_dev_{name}"] = checks.accuracy.onnx_accuracy
    return figures


def _evaluate(out: Path) -> dict[str, Any]:
    result = _json(out / "evaluation.json") or {}
    return {k: round(float(v), 4) for k, v in result.items()
            if k in ("accuracy", "macro_f1", "micro_f1", "mean_auc")
            and isinstance(v, (int, float))}


def _predict(out: Path) -> dict[str, Any]:
    path = out / "predictions.jsonl"
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        return {"predictions": sum(1 for _ in f)}


def _split(out: Path) -> dict[str, Any]:
    figures = {}
    for name in ("train", "dev", "test"):
        p = out / f"{name}.tsv"
        if p.exists():
            with open(p, encoding="utf-8") as f:
                figures[name] = sum(1 for _ in f) - 1
    return figures


_FIGURES = {"split": _split, "align": _align, "train": _train, "export": _export,
            "evaluate": _evaluate, "predict": _predict}


def stage_figures(stage: str, out_dir: Path) -> dict[str, Any]:
    return _FIGURES[stage](out_dir)
