"""Compare meta-embedding methods on real data, each run exactly as a user would run it.

    python benchmarks/bench_methods.py [--seeds 0,1,2] [--encoder bilstm --hidden 128] [--jobs 2]

1. prepares the data if needed (``benchmarks/realdata.py``: GloVe 6B 50d, the MiniLM WordPiece
   table, the fortunes topic task);
2. ``metaprep align`` GloVe + MiniLM into one store, restricted to the words of the task's
   train/dev/test files, lowercase case policy (GloVe 6B and MiniLM are both uncased);
3. ``metaprep train`` every method x seed (dme, cdme, concat, sum, single:glove, single:minilm)
   with the test file attached, then reads each run's ``metrics.json``;
4. prints a markdown table (accuracy and macro-F1 mean +- sample std over the seeds, train time)
   and writes it to ``benchmarks/results/methods.{md,json}`` with the date, commit and settings.

Every ``metaprep`` call is a subprocess (``python -m metaprep ...``), so each run pays what a
user's run pays (interpreter and torch start-up, reading the store). Each run gets
``--threads`` torch threads (OMP_NUM_THREADS) and ``--jobs`` runs go at once: on a small, busy
machine one thread per process is much faster than torch's default of one per core. Finished
runs are kept in ``--work``; rerunning reuses a run whose settings and store match (``--fresh``
retrains everything).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realdata  # noqa: E402 - the sibling script, importable once its folder is on the path

from metaprep.errors import MetaprepError, ModelError  # noqa: E402

METHODS = ("dme", "cdme", "concat", "sum", "single:glove", "single:minilm")
RECORD = "bench_record.json"  # our own file in each run directory: settings, time, test metrics


class BenchError(MetaprepError):
    """A benchmark step failed (the message names the command and its log)."""


# --- running metaprep ------------------------------------------------------------------------


def run_metaprep(args: Sequence[str], *, log: Path, threads: int = 1) -> float:
    """Run ``python -m metaprep ARGS``; stdout+stderr go to ``log``. Returns wall seconds."""
    cmd = [sys.executable, "-m", "metaprep", *args]
    sys.stderr.write("$ metaprep " + " ".join(args) + "\n")  # one write: jobs run in threads
    sys.stderr.flush()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"`metaprep {args[0]}` exited with {proc.returncode}: "
                         + " | ".join(tail), path=log)
    return seconds


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def align_store(manifest: Mapping[str, Any], work: Path, *, fresh: bool,
                oov: Sequence[str] = ()) -> tuple[Path, str, float]:
    """The GloVe + MiniLM store over the task's words: (path, key, seconds). The key hashes the
    align arguments and the task files; a store with the same key is reused (0 seconds)."""
    g, m, files = manifest["glove"], manifest["minilm"], manifest["task"]["files"]
    store = work / "store.h5"
    args = [
        "align",
        f"glove={g['matrix']}", "--vocab-file", f"glove={g['vocab']}",
        f"minilm={m['table']}", "--tensor", f"minilm={m['tensor']}",
        "--vocab-file", f"minilm={m['vocab']}",
        "--vocab", files["train"], "--vocab", files["dev"], "--vocab", files["test"],
        "--case", "lower", "--lowercase", "--quiet",
        *[a for spec in oov for a in ("--oov", spec)],
        "-o", str(store),
    ]
    key = hashlib.sha256(json.dumps(
        [args, [_sha256(files[s]) for s in ("train", "dev", "test")]]).encode()).hexdigest()[:16]
    key_file = work / "store.key"
    if (not fresh and store.is_file() and key_file.is_file()
            and key_file.read_text(encoding="utf-8").strip() == key):
        return store, key, 0.0
    seconds = run_metaprep(args, log=work / "logs" / "align.log")
    key_file.write_text(key + "\n", encoding="utf-8")
    return store, key, seconds


def train_args(settings: Mapping[str, Any]) -> list[str]:
    return [
        "--encoder", settings["encoder"], "--set", f"hidden={settings['hidden']}",
        "--epochs", str(settings["epochs"]), "--batch-size", str(settings["batch_size"]),
        "--lr", str(settings["lr"]), "--set", f"lr_decay={settings['lr_decay']}",
        "--set", f"patience={settings['patience']}", "--quiet",
    ]


def read_test_metrics(run_dir: Path) -> dict[str, Any]:
    """Test accuracy and macro-F1 (and the best epoch) from a run's metrics.json."""
    path = run_dir / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read metrics: {exc}", path=path) from exc
    test = metrics.get("test")
    if not isinstance(test, dict) or "accuracy" not in test or "macro_f1" not in test:
        raise ModelError("no test accuracy / macro_f1 in metrics", path=path,
                         hint="was the run trained with --test?")
    return {"accuracy": float(test["accuracy"]), "macro_f1": float(test["macro_f1"]),
            "dev_accuracy": metrics.get("best_dev_accuracy"),
            "best_epoch": metrics.get("best_epoch"), "epochs_run": len(metrics.get("epochs", []))}


def train_one(
    store: Path, store_key: str, files: Mapping[str, str], method: str, seed: int,
    settings: Mapping[str, Any], runs: Path, work: Path, *, fresh: bool,
) -> dict[str, Any]:
    run_dir = runs / f"{method.replace(':', '-')}-seed{seed}"
    record_path = run_dir / RECORD
    wanted = {"method": method, "seed": seed, "settings": dict(settings), "store_key": store_key}
    if record_path.is_file() and not fresh:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if {k: record.get(k) for k in wanted} == wanted:
            print(f"reusing {run_dir}", file=sys.stderr)
            return dict(record)
    args = [
        "train", "--store", str(store), "--train", files["train"], "--dev", files["dev"],
        "--test", files["test"], "--method", method, *train_args(settings),
        "--seed", str(seed), "-o", str(run_dir),
    ]
    seconds = run_metaprep(args, log=work / "logs" / f"{runs.name}-{run_dir.name}.log",
                           threads=settings["threads"])
    record = {**wanted, "run_dir": str(run_dir), "seconds": round(seconds, 1),
              "date": dt.date.today().isoformat(), "commit": _commit(),
              **read_test_metrics(run_dir)}
    sys.stderr.write(f"{method} seed {seed}: test accuracy {record['accuracy']:.4f} macro-F1 "
                     f"{record['macro_f1']:.4f} ({seconds:.0f} s)\n")
    sys.stderr.flush()
    tmp = record_path.with_name(f".{RECORD}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, record_path)
    return record


def read_source_weights(run_dir: Path) -> dict[str, float] | None:
    """Mean mixing weight per source over the dev tokens (dme/cdme runs' analysis.json)."""
    path = run_dir / "analysis.json"
    try:
        analysis = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    overall = analysis.get("overall", {}) if analysis.get("has_weights") else {}
    weights = overall.get("mean_weight")
    return {k: round(float(v), 4) for k, v in weights.items()} if weights else None


# --- summarising -----------------------------------------------------------------------------


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(records: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """One row per method: accuracy / macro-F1 in % (mean, sample std), mean seconds."""
    rows = []
    for method in methods:
        runs = [r for r in records if r["method"] == method]
        if not runs:
            continue
        acc = _mean_std([100 * r["accuracy"] for r in runs])
        f1 = _mean_std([100 * r["macro_f1"] for r in runs])
        weights = [r["source_weights"] for r in runs if r.get("source_weights")]
        mean_weights = ({k: round(statistics.fmean(w[k] for w in weights), 3)
                         for k in weights[0]} if len(weights) == len(runs) else None)
        rows.append({"method": method, "runs": len(runs), "source_weights": mean_weights,
                     "accuracy_mean": round(acc[0], 2), "accuracy_std": round(acc[1], 2),
                     "macro_f1_mean": round(f1[0], 2), "macro_f1_std": round(f1[1], 2),
                     "seconds_mean": round(statistics.fmean(r["seconds"] for r in runs), 1)})
    return rows


def markdown(rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> str:
    s = meta["settings"]
    lines = [
        f"Fortunes topic task ({meta['task_sizes']}; 8 classes), GloVe 6B 50d + MiniLM "
        f"WordPiece table aligned over the task words. `metaprep train --encoder {s['encoder']} "
        f"--hidden {s['hidden']} --epochs {s['epochs']} --batch-size {s['batch_size']} "
        f"--lr {s['lr']} --lr-decay {s['lr_decay']} --patience {s['patience']}` (other options "
        f"at their defaults), seeds {meta['seeds']}. "
        f"Test accuracy and macro-F1 in %, mean +- sample std over the seeds. Train time: wall "
        f"seconds of one `metaprep train` process (start-up and test scoring included), mean "
        f"over the seeds, {s['jobs']} run(s) at a time with {s['threads']} torch thread(s) each. "
        f"Source weights: mean mixing weight per source over the dev tokens (dme, cdme).",
        "",
        f"Runs trained {meta['date']} at commit `{meta['commit']}` on {meta['machine']}.",
        "",
        "| method | accuracy | macro-F1 | train time (s) | source weights |",
        "|--------|---------:|---------:|---------------:|----------------|",
    ]
    for r in rows:
        w = r.get("source_weights")
        weights = ", ".join(f"{k} {v:.2f}" for k, v in w.items()) if w else "-"
        lines.append(f"| {r['method']} | {r['accuracy_mean']:.1f} +- {r['accuracy_std']:.1f} "
                     f"| {r['macro_f1_mean']:.1f} +- {r['macro_f1_std']:.1f} "
                     f"| {r['seconds_mean']:.0f} | {weights} |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _commits(commits: Sequence[str]) -> str:
    """The commit(s) runs were trained at, in run order; shortened when HEAD moved meanwhile."""
    unique = list(dict.fromkeys(commits))
    if len(unique) <= 2:
        return ", ".join(unique)
    return f"{unique[0]} ... {unique[-1]} ({len(unique)} commits: HEAD moved during the runs)"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Train every meta-embedding method x seed on the fortunes topic task "
        "(GloVe 6B 50d + MiniLM) and tabulate test accuracy / macro-F1.")
    parser.add_argument("--data", default="benchmarks/data/real", help="realdata.py output")
    parser.add_argument("--work", default="benchmarks/data/methods", help="store, runs, logs")
    parser.add_argument("--results", default="benchmarks/results", help="methods.{md,json}")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated")
    parser.add_argument("--encoder", default="bilstm", choices=("bilstm", "pool"))
    parser.add_argument("--hidden", type=int, default=128,
                        help="BiLSTM units per direction (metaprep's default is 512; 128 keeps "
                        "the 18 runs within ~40 minutes on 2 cores)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3,
                        help="Adam learning rate (metaprep's default 4e-4 suits large data; "
                        "this task has 19 batches per epoch)")
    parser.add_argument("--lr-decay", type=float, default=0.2,
                        help="lr factor when dev accuracy does not improve (metaprep's default)")
    parser.add_argument("--patience", type=int, default=3, help="(metaprep's default)")
    parser.add_argument("--jobs", type=int, default=2, help="training runs at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--tag", default="",
                        help="name of this configuration: runs go to WORK/runs-TAG and results "
                        "to methods-TAG.{md,json} (default: WORK/runs, methods.{md,json})")
    parser.add_argument("--oov", action="append", default=[], metavar="NAME=STRATEGY",
                        help="passed to metaprep align (e.g. minilm=subword); use its own --work")
    parser.add_argument("--fresh", action="store_true", help="realign and retrain everything")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    settings = {"encoder": args.encoder, "hidden": args.hidden, "epochs": args.epochs,
                "batch_size": args.batch_size, "lr": args.lr, "lr_decay": args.lr_decay,
                "patience": args.patience, "threads": args.threads,
                "jobs": args.jobs, "oov": args.oov}
    work = Path(args.work)
    runs = work / (f"runs-{args.tag}" if args.tag else "runs")
    name = f"methods-{args.tag}" if args.tag else "methods"
    wall = time.perf_counter()
    try:
        manifest = realdata.prepare(args.data)
        files = manifest["task"]["files"]
        store, key, align_seconds = align_store(manifest, work, fresh=args.fresh, oov=args.oov)
        jobs = [(method, seed) for method in methods for seed in seeds]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            records = list(pool.map(
                lambda job: train_one(store, key, files, job[0], job[1], settings, runs, work,
                                      fresh=args.fresh), jobs))
    except MetaprepError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in records:
        r["source_weights"] = read_source_weights(Path(r["run_dir"]))
    counts = manifest["task"]["counts"]
    meta = {
        "date": ", ".join(sorted({str(r.get("date")) for r in records})),
        "commit": _commits([str(r.get("commit")) for r in records]),
        "machine": f"{platform.machine()} Linux, {os.cpu_count()} cores, CPU only",
        "settings": settings, "seeds": seeds,
        # this invocation only: a reused store / reused runs cost nothing here
        "align_seconds_this_call": round(align_seconds, 1),
        "wall_seconds_this_call": round(time.perf_counter() - wall, 1),
        "train_seconds_sum": round(sum(r["seconds"] for r in records), 1),
        "task_sizes": ", ".join(f"{k} {sum(counts[k].values())}" for k in ("train", "dev", "test")),
    }
    rows = summarise(records, methods)
    table = markdown(rows, meta)
    print(table)
    results = Path(args.results)
    _write_atomic(results / f"{name}.md", table)
    _write_atomic(results / f"{name}.json", json.dumps(
        {"meta": meta, "summary": rows, "runs": records}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
