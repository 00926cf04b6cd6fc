"""Accuracy and speed of the two sentence encoders on one task: `--encoder pool` (max + mean over
the meta-embeddings, no recurrence) against BiLSTM-max.

    python benchmarks/bench_encoders.py [--task auto|fortunes|polarity] [--seeds 0,1,2]
                                        [--method dme] [--epochs 10] [--hidden 512]

Tasks:
* ``fortunes`` (used by ``auto`` when ``benchmarks/realdata.py`` has prepared
  ``benchmarks/data/real/``): 8-way topic classification, 1187/255/255 texts; sources GloVe 6B 50d
  and the MiniLM WordPiece table, aligned over the task's words (lowercase).
* ``polarity``: gensim's bundled ``pang_lee_polarity.cor`` (200 labelled sentences, split
  140/30/30 here); sources gensim's ``lee_fasttext.vec`` and ``test_glove.txt``. Tiny: the
  accuracies are anecdotes, the speeds are real.

Both encoders train with the same method, seeds, data and options through
``metaprep.learn.train.train`` (the library call behind ``metaprep train``). Printed per
encoder: test accuracy and macro-F1 (mean and sample std over seeds, best-dev-epoch weights),
training sentences/s (mean over epochs), and inference sentences/s on the test set (batch 256,
best of 3 passes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "data" / "encoders"


def _align(args: list[str], store: Path) -> Path:
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "metaprep", "align", *args, "-o", str(store)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"align failed: {proc.stderr.strip()[-500:]}")
    return store


def fortunes_task() -> dict[str, Path]:
    manifest = json.loads((ROOT / "data" / "real" / "manifest.json").read_text())
    g, m, files = manifest["glove"], manifest["minilm"], manifest["task"]["files"]
    store = _align([
        f"glove={g['matrix']}", "--vocab-file", f"glove={g['vocab']}",
        f"minilm={m['table']}", "--tensor", f"minilm={m['tensor']}",
        "--vocab-file", f"minilm={m['vocab']}",
        "--vocab", files["train"], "--vocab", files["dev"], "--vocab", files["test"],
        "--case", "lower", "--lowercase",
    ], WORK / "fortunes.h5")
    return {"store": store, **{k: Path(files[k]) for k in ("train", "dev", "test")}}


def polarity_task() -> dict[str, Path]:
    import gensim

    data = Path(gensim.__file__).parent / "test" / "test_data"
    out = WORK / "polarity"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for line in (data / "pang_lee_polarity.cor").read_text(encoding="latin-1").splitlines():
        label, _, text = line.partition(" ")
        if text.strip():
            rows.append((text.replace("\t", " ").strip(), label.replace("__label__", "")))
    files = {}
    for name, part in (("train", [r for i, r in enumerate(rows) if i % 10 < 7]),
                       ("dev", [r for i, r in enumerate(rows) if i % 10 in (7, 8)]),
                       ("test", [r for i, r in enumerate(rows) if i % 10 == 9])):
        files[name] = out / f"{name}.tsv"
        files[name].write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in part),
                               encoding="utf-8")
    store = _align([
        f"ft={data / 'lee_fasttext.vec'}", f"glove={data / 'test_glove.txt'}",
        "--vocab", str(files["train"]), "--vocab", str(files["dev"]),
        "--vocab", str(files["test"]), "--case", "lower",
    ], WORK / "polarity.h5")
    return {"store": store, **files}


def finished_run(out: Path, cfg: Any) -> dict[str, Any] | None:
    """The metrics of a finished run in ``out`` trained with ``cfg``'s settings, else None."""
    from metaprep.errors import MetaprepError
    from metaprep.learn.rundir import Run

    try:
        run = Run.open(out)
        saved, metrics = run.config.to_dict(), run.metrics
    except MetaprepError:
        return None
    if metrics is None:
        return None
    filled = ("sources", "source_dims", "vocab_size", "num_labels", "pair")  # from store/data
    same = all(saved.get(k) == v for k, v in cfg.to_dict().items() if k not in filled)
    return metrics if same and metrics.get("test") else None


def inference_rate(run_dir: Path, test: Path, batch_size: int) -> float:
    from metaprep.learn.data import LabelMap, load_task
    from metaprep.learn.evaluate import predict
    from metaprep.learn.rundir import Run

    with Run.open(run_dir, verify_store=False) as run:
        model = run.load_model()
        data, _ = load_task(test, run.encoder(), labels=LabelMap(run.labels), progress=False)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        predict(model, data, batch_size=batch_size)
        best = min(best, time.perf_counter() - t0)
    return len(data) / best


def _ms(values: list[float]) -> str:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3f} +- {std:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=["auto", "fortunes", "polarity"], default="auto")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--method", default="dme")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--proj-dim", type=int, default=256)
    ap.add_argument("--infer-batch", type=int, default=64, help="inference batch size")
    ap.add_argument("--fresh", action="store_true",
                    help="retrain runs that already exist with the same settings")
    args = ap.parse_args()

    from metaprep.learn.config import RunConfig
    from metaprep.learn.train import train

    task_name = args.task
    if task_name == "auto":
        prepared = (ROOT / "data" / "real" / "manifest.json").exists()
        task_name = "fortunes" if prepared else "polarity"
    task = fortunes_task() if task_name == "fortunes" else polarity_task()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"task {task_name}; method {args.method}; proj {args.proj_dim}; BiLSTM hidden "
          f"{args.hidden}; up to {args.epochs} epochs; seeds {seeds}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")
    results: dict[str, list[dict[str, Any]]] = {}
    for encoder in ("pool", "bilstm"):
        for seed in seeds:
            out = WORK / "runs" / f"{task_name}-{args.method}-{encoder}-h{args.hidden}-s{seed}"
            cfg = RunConfig(method=args.method, encoder=encoder, hidden=args.hidden,
                            proj_dim=args.proj_dim, epochs=args.epochs, seed=seed)
            m = None if args.fresh else finished_run(out, cfg)
            wall = float("nan")  # not measured for a reused run
            if m is None:
                if out.exists():
                    shutil.rmtree(out)
                t0 = time.perf_counter()
                m = train(cfg, store=task["store"], train_data=task["train"], dev=task["dev"],
                          test=task["test"], out=out, progress=False)
                wall = time.perf_counter() - t0
            rec = {
                "acc": m["test"]["accuracy"], "f1": m["test"]["macro_f1"],
                "train_rate": statistics.mean(e["sentences_per_second"] for e in m["epochs"]),
                "infer_rate": inference_rate(out, task["test"], args.infer_batch),
                "epochs": len(m["epochs"]), "wall": wall,
            }
            print(f"  {encoder:<6} seed {seed}: test acc {rec['acc']:.3f} macro-F1 {rec['f1']:.3f}"
                  f" | {rec['epochs']} epochs in {wall:.0f}s", flush=True)
            results.setdefault(encoder, []).append(rec)
    print(f"\n{'encoder':<8} {'test accuracy':>16} {'test macro-F1':>16} {'train sent/s':>13} "
          f"{'infer sent/s':>13}")
    for encoder, recs in results.items():
        print(f"{encoder:<8} {_ms([r['acc'] for r in recs]):>16} {_ms([r['f1'] for r in recs]):>16}"
              f" {statistics.mean(r['train_rate'] for r in recs):13.0f}"
              f" {statistics.mean(r['infer_rate'] for r in recs):13.0f}")


if __name__ == "__main__":
    main()
