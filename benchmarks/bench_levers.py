"""The meta-embedding ablation: naive mixes, DME, CDME and DME with each front-end lever, on both
real tasks (fortunes topics, Debian sections), several seeds, from the same run.

    python benchmarks/bench_levers.py run [--tasks fortunes,debian] [--seeds 0,1,2] [--shard 0/2]
    python benchmarks/bench_levers.py report      # tables, JSON and plot from the finished runs

Each task's store is aligned once (GloVe 6B 50d + the MiniLM WordPiece input table over the
task's words, lower case; with ``--distilled FILE`` a second store of GloVe + the static
MiniLM table from ``metaprep static-source``), then every variant x seed is trained in-process
through ``metaprep.stages.train`` with the pooled encoder (max+mean; the BiLSTM costs too much
CPU for this many runs on 2 shared cores) and early stopping. Finished runs are reused (their
``metrics.json``); ``--shard i/n`` lets n processes share the list. ``--distilled-words DIR`` adds
stores of GloVe + DIR/TASK.bin, distilled from each task's own words. ``report`` writes
``benchmarks/results/levers.{md,json,png}``: test accuracy mean +- sample std over the seeds,
and the winning front end, chosen by mean dev accuracy (the test set never picks it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REAL = Path(os.environ.get("METAPREP_REAL_DATA", str(HERE / "data" / "real")))  # realdata.py --out
RESULTS = HERE / "results"
# the shared settings: pooled encoder, a capped number of epochs with early stopping
SETTINGS: dict[str, Any] = {"encoder": "pool", "epochs": 8, "patience": 2, "lr": 1e-3,
                            "lr_decay": 0.2, "batch_size": 64, "proj_dim": 256,
                            "mlp_hidden": 256}
# Debian's 47,575 training texts cost ~20 s an epoch on a loaded core: the ablation trains on
# every 4th one (dev and test stay whole), which also is the low-resource end where
# meta-embeddings are said to help most
TRAIN_EVERY = {"fortunes": 1, "debian": 4}
# name -> train options beyond SETTINGS; "store" picks the store (base or distilled)
VARIANTS: dict[str, dict[str, Any]] = {
    "single:glove": {"method": "single:glove"},
    "single:minilm": {"method": "single:minilm"},
    "concat": {"method": "concat"},
    "sum": {"method": "sum"},
    "sum+scale": {"method": "sum", "source_norm": "scale"},
    "concat+scale": {"method": "concat", "source_norm": "scale"},
    "concat+layernorm": {"method": "concat", "source_norm": "layernorm"},
    "dme": {"method": "dme"},
    "cdme": {"method": "cdme"},
    "dme+center": {"method": "dme", "source_norm": "center"},
    "dme+scale": {"method": "dme", "source_norm": "scale"},
    "dme+layernorm": {"method": "dme", "source_norm": "layernorm"},
    # word features, source dropout, ReLU + dropout after the mix and an entropy term were
    # measured here too (results/levers.md) and removed on 2026-12-07: no gain on either task
    "dme+proj50": {"method": "dme", "proj_dim": 50},  # the smallest source (the paper)
    "dme+proj384": {"method": "dme", "proj_dim": 384},  # the largest source (FAME)
    "dme+sigmoid": {"method": "dme", "gating": "sigmoid"},
    # the levers that helped on fortunes, together (and the same normalisation for sum)
    "sum+layernorm": {"method": "sum", "source_norm": "layernorm"},
    "dme+layernorm+sigmoid": {"method": "dme", "source_norm": "layernorm", "gating": "sigmoid"},
    "cdme+layernorm+sigmoid": {"method": "cdme", "source_norm": "layernorm",
                               "gating": "sigmoid"},
    # the 8-epoch cap stops most runs while dev accuracy still rises: the same front ends with
    # 30 epochs and patience 3 (fortunes only: its runs are short) show whether the order holds
    "concat@30ep": {"method": "concat", "epochs": 30, "patience": 3},
    "sum@30ep": {"method": "sum", "epochs": 30, "patience": 3},
    "single:minilm@30ep": {"method": "single:minilm", "epochs": 30, "patience": 3},
    "dme@30ep": {"method": "dme", "epochs": 30, "patience": 3},
    "dme+layernorm+sigmoid@30ep": {"method": "dme", "source_norm": "layernorm",
                                   "gating": "sigmoid", "epochs": 30, "patience": 3},
    # the default encoder (BiLSTM-max, hidden 128 as in benchmarks/results/methods.md): does the
    # order of the pooled runs hold? (fortunes only: the BiLSTM costs ~5x the pool)
    "bilstm:concat": {"method": "concat", "encoder": "bilstm", "hidden": 128, "epochs": 15,
                      "patience": 3},
    "bilstm:sum+layernorm": {"method": "sum", "source_norm": "layernorm", "encoder": "bilstm",
                             "hidden": 128, "epochs": 15, "patience": 3},
    "bilstm:dme+layernorm": {"method": "dme", "source_norm": "layernorm", "encoder": "bilstm",
                             "hidden": 128, "epochs": 15, "patience": 3},
    "bilstm:dme+layernorm+sigmoid": {"method": "dme", "source_norm": "layernorm",
                                     "gating": "sigmoid", "encoder": "bilstm", "hidden": 128,
                                     "epochs": 15, "patience": 3},
    # the static MiniLM table (metaprep static-source) in place of the raw input table
    "single:distil": {"method": "single:distil", "store": "distil"},
    "sum(glove+distil)": {"method": "sum", "store": "distil"},
    "dme(glove+distil)": {"method": "dme", "store": "distil"},
    # distilled from the task's own words (each word's WordPieces through the model)
    "single:distil(words)": {"method": "single:distil", "store": "distilw"},
    "sum(glove+distil words)": {"method": "sum", "store": "distilw"},
    "dme(glove+distil words)": {"method": "dme", "store": "distilw"},
    # lever 6: the learned source (task words + hashed word bigrams) beside the frozen sources,
    # on the `fast` preset's recipe (LEARNED below) and the whole training set
    "learned:sum+layernorm": {"method": "sum"},  # the fast preset as it was
    "learned:sum": {"method": "sum", "source_norm": "none"},
    "learned:concat": {"method": "concat", "source_norm": "none"},
    "learned:dme+layernorm": {"method": "dme"},
    "learned:dme+layernorm+sigmoid": {"method": "dme", "gating": "sigmoid"},
    "learned:cdme+layernorm": {"method": "cdme"},
}
# the learned-source rows: the fast preset (pooled encoder, 64-d projections, the learned
# source, per-source LayerNorm), the frontier benchmark's epochs, every training text
LEARNED: dict[str, Any] = {"preset": "fast", "lr": 1e-3}
LEARNED_EPOCHS = {"fortunes": 15, "debian": 6}
NAIVE = ("concat", "sum")
NOTES = """Notes. `name@30ep` rows (30 epochs, patience 3) are bit-identical to their 8-epoch
rows: runs end when the lr decays below min_lr, not at the epoch cap. `bilstm:` rows use the default
BiLSTM-max encoder (hidden 128, 15 epochs). `distil` is `metaprep static-source` of all-MiniLM-L6-v2
over its tokenizer vocabulary (256 PCA dims, Zipf weights), the same words as the raw `minilm`
input table; `distil(words)` distils each task's own store words (made with an earlier word
cutter, the `tokenizers` library's BERT pre-tokenizer, at commit 01e74ca). `learned:` rows add the
learned source (a 64-d table over the task's words + 200k hashed word bigrams, trained with the
task) to the two frozen sources, on the `fast` preset's recipe (pooled encoder, 64-d projections,
per-source LayerNorm unless the row says otherwise, lr 1e-3) with the frontier benchmark's epochs
(fortunes 15, Debian 6) and every training text. Their word features' frequency bin counts the
train split; with the earlier bin (the store row's rank, which counts dev and test words too),
`learned:dme+layernorm+features` gave 77.8 +- 1.2 on fortunes (same seeds, 2026-12-02 at
971954d), against 75.9 +- 0.9 here: the gain it seemed to show did not survive the fix. A variant
missing from a task's table was not run for it (time)."""
SINGLE = ("single:glove", "single:minilm", "single:distil", "single:distil(words)",
          "single:minilm@30ep")


# --- stores and runs --------------------------------------------------------------------------
def align(task: str, work: Path, distilled: Path | None, words_dir: Path | None
          ) -> dict[str, Path]:
    """The task's stores, aligned once each (reused when present)."""
    from metaprep import stages

    manifest = json.loads((REAL / "manifest.json").read_text(encoding="utf-8"))
    g, m = manifest["glove"], manifest["minilm"]
    files = [str(train_file(task, work)), *(str(REAL / f"{task}.{s}.tsv") for s in ("dev", "test"))]
    base = ({"glove": g["matrix"], "minilm": m["table"]},
            {"glove": g["vocab"], "minilm": m["vocab"]}, {"minilm": m["tensor"]})
    plans: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]] = {"base": base}
    vocab_files = {"base": files}
    if TRAIN_EVERY.get(task, 1) > 1:  # the learned-source rows train on every text
        plans["full"] = base
        vocab_files["full"] = [str(train_file(task, work, whole=True)), *files[1:]]
    if distilled is not None:
        plans["distil"] = ({"glove": g["matrix"], "distil": str(distilled)},
                           {"glove": g["vocab"]}, {})
    if words_dir is not None:
        plans["distilw"] = ({"glove": g["matrix"], "distil": str(words_dir / f"{task}.bin")},
                            {"glove": g["vocab"]}, {})
    stores = {}
    for name, (sources, vocab_file, tensors) in plans.items():
        out = work / task / f"{name}.h5"
        if not out.is_file():
            stages.align(stages.AlignOptions(
                sources=sources, vocab_file=vocab_file, tensor=tensors,
                vocab=tuple(vocab_files.get(name, files)), case="lower", lowercase=True,
                output=out, quiet=True))
        stores[name] = out
    stores.setdefault("full", stores["base"])
    return stores


def train_file(task: str, work: Path, *, whole: bool = False) -> Path:
    """The task's training file, or every TRAIN_EVERY-th line of it (written once)."""
    every, full = 1 if whole else TRAIN_EVERY.get(task, 1), REAL / f"{task}.train.tsv"
    if every == 1:
        return full
    out = work / task / f"train.every{every}.tsv"
    if not out.is_file():
        header, *rows = full.read_text(encoding="utf-8").splitlines()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text("\n".join([header, *rows[::every]]) + "\n", encoding="utf-8")
        tmp.replace(out)
    return out


def train_one(task: str, variant: str, seed: int, stores: Mapping[str, Path], work: Path
              ) -> Path:
    from metaprep import stages

    out = work / task / "runs" / f"{variant}-s{seed}"
    if (out / "metrics.json").is_file() and (out / "bench.json").is_file():
        return out
    learned = variant.startswith("learned:")
    opts = ({**LEARNED, "epochs": LEARNED_EPOCHS[task], **VARIANTS[variant]} if learned
            else {**SETTINGS, **VARIANTS[variant]})
    store = stores[opts.pop("store", "full" if learned else "base")]
    start = time.perf_counter()
    preset = opts.pop("preset", None)
    stages.train(stages.TrainOptions(
        store=store, train=train_file(task, work, whole=learned), dev=REAL / f"{task}.dev.tsv",
        test=REAL / f"{task}.test.tsv", output=out, preset=preset, threads=1, quiet=True,
        config={**opts, "seed": seed}))
    record = {"seconds": time.perf_counter() - start, "commit": _commit(),
              "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "load": os.getloadavg()[0], "options": opts}
    (out / "bench.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return out


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=HERE, check=False)
    return out.stdout.strip() or "unknown"


# --- report -------------------------------------------------------------------------------------
def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def collect(work: Path, tasks: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for task in tasks:
        rows = {}
        for variant in VARIANTS:
            runs = [work / task / "runs" / f"{variant}-s{s}" for s in seeds]
            if not all((r / "bench.json").is_file() for r in runs):
                continue
            metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
            bench = [json.loads((r / "bench.json").read_text()) for r in runs]
            test = [100 * m["test"]["accuracy"] for m in metrics]
            dev = [100 * m["dev"]["accuracy"] for m in metrics]
            rows[variant] = {"test": _mean_sd(test), "dev": _mean_sd(dev), "test_runs": test,
                             "seconds": statistics.fmean(b["seconds"] for b in bench),
                             "commits": sorted({b["commit"] for b in bench}),
                             "dates": sorted({b["date"][:10] for b in bench}),
                             "load": statistics.fmean(b["load"] for b in bench),
                             "weights": _weights(runs[0])}
        table[task] = rows
    return table


def _weights(run: Path) -> str:
    try:
        analysis = json.loads((run / "analysis.json").read_text())
        if not analysis.get("has_weights"):
            return "-"
        mean = analysis["overall"]["mean_weight"]
        return ", ".join(f"{k} {v:.2f}" for k, v in mean.items())
    except (OSError, KeyError, TypeError, ValueError):
        return "-"


def verdict(rows: Mapping[str, Any], singles: Mapping[str, Any] | None = None
            ) -> dict[str, Any]:
    """The winning dme/cdme front end by mean dev accuracy, against the best naive mix (concat or
    sum, with or without normalisation) and the best single source (from ``singles`` when the
    rows have none), both by test accuracy (the hardest comparison for the winner)."""
    mixes = {k: v for k, v in rows.items() if k.startswith(("dme", "cdme"))}
    singles = {k: v for k, v in (singles or rows).items() if k in SINGLE}
    if not mixes or not singles:
        return {}
    win = max(mixes, key=lambda k: mixes[k]["dev"][0])
    naive = max((k for k in rows if k.startswith(NAIVE)), key=lambda k: rows[k]["test"][0])
    single = max(singles, key=lambda k: singles[k]["test"][0])
    rows = {**rows, single: singles[single]}
    best = max((k for k in rows if k != single), key=lambda k: rows[k]["dev"][0])
    w, n = rows[win]["test"], rows[naive]["test"]
    return {"winner": win, "winner_test": w, "best_naive": naive, "naive_test": n,
            "beats_naive_by_more_than_spread": w[0] - n[0] > max(w[1], n[1]),
            "best_overall": best, "best_overall_test": rows[best]["test"],
            "best_single": single, "single_test": rows[single]["test"],
            "best_is_single_plus_3": rows[best]["test"][0] >= rows[single]["test"][0] + 3}


def _verdict_line(v: Mapping[str, Any], what: str) -> str:
    return (f"{what} (by dev): **{v['winner']}**, test {v['winner_test'][0]:.1f} +- "
            f"{v['winner_test'][1]:.1f}; best naive mix {v['best_naive']} "
            f"{v['naive_test'][0]:.1f} +- {v['naive_test'][1]:.1f} (ahead by more than the seed "
            f"spread: {'yes' if v['beats_naive_by_more_than_spread'] else 'no'}). Best "
            f"configuration (by dev): {v['best_overall']} {v['best_overall_test'][0]:.1f}; best "
            f"single source {v['best_single']} {v['single_test'][0]:.1f} (+3 points reached: "
            f"{'yes' if v['best_is_single_plus_3'] else 'no'}).")


def markdown(table: Mapping[str, Any], verdicts: Mapping[str, Any], meta: Mapping[str, Any],
             learned: Mapping[str, Any] | None = None) -> str:
    lines = [
        "# Meta-embedding ablation: naive mixes, DME, CDME, and DME with each lever", "",
        f"Trained {meta['dates']} at commit(s) {meta['commits']} on {meta['machine']}; mean "
        f"1-minute load during the runs {meta['load']:.1f} (2 cores shared: times compare only "
        f"within this table). Seeds {meta['seeds']}; settings {meta['settings']} (`--encoder "
        "pool`, early stopping on dev accuracy), everything else at the RunConfig defaults of "
        "that commit. Debian trains on every 4th training text (11,894; dev and test "
        "whole). GloVe 6B 50d + the MiniLM WordPiece input table, aligned over the task's "
        "words (lower case). Test accuracy in %, mean +- sample sd over the seeds; the winning "
        "front end is picked by mean dev accuracy.", ""]
    for task, rows in table.items():
        lines += [f"## {task}", "", "| front end | test acc | dev acc | s/run | weights (seed 0) |",
                  "|---|---:|---:|---:|---|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['test'][0]:.1f} +- {r['test'][1]:.1f} | "
                         f"{r['dev'][0]:.1f} +- {r['dev'][1]:.1f} | {r['seconds']:.0f} | "
                         f"{r['weights']} |")
        v = verdicts.get(task)
        if v:
            lines += ["", _verdict_line(v, "Winning dme/cdme front end")]
        v = (learned or {}).get(task)
        if v:
            lines += ["", _verdict_line(v, "With the learned source (`learned:` rows), winning "
                                           "dme/cdme front end")]
        lines.append("")
    lines.append(NOTES)
    return "\n".join(lines) + "\n"


def plot(table: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(table), figsize=(7 * len(table), 8), squeeze=False)
    for ax, (task, rows) in zip(axes[0], table.items(), strict=True):
        names = list(rows)
        means = [rows[n]["test"][0] for n in names]
        sds = [rows[n]["test"][1] for n in names]
        colors = ["tab:gray" if n.startswith("single") else "tab:orange"
                  if n.startswith(NAIVE) else "tab:blue" for n in names]
        ax.barh(range(len(names)), means, xerr=sds, color=colors)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        lo = min(m - s for m, s in zip(means, sds, strict=True))
        ax.set_xlim(max(0.0, lo - 3), max(m + s for m, s in zip(means, sds, strict=True)) + 1)
        ax.set_xlabel("test accuracy (%), mean +- sd over seeds")
        ax.set_title(task)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["run", "report"])
    ap.add_argument("--tasks", default="fortunes,debian")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="", help="comma-separated subset [all]")
    ap.add_argument("--distilled", type=Path,
                    help="the static MiniLM table (metaprep static-source)")
    ap.add_argument("--distilled-words", type=Path,
                    help="a folder of TASK.bin tables distilled from each task's words")
    ap.add_argument("--shard", default="0/1", help="i/n: this process trains every n-th run")
    ap.add_argument("--work", type=Path, default=HERE / "data" / "levers")
    ap.add_argument("--keep-earlier", action="store_true",
                    help="report: keep the rows of levers.json whose runs are not in --work")
    args = ap.parse_args(argv)
    tasks, seeds = args.tasks.split(","), [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",") if args.variants else list(VARIANTS)
    if args.distilled is None:
        variants = [v for v in variants if VARIANTS[v].get("store") != "distil"]
    if args.distilled_words is None:
        variants = [v for v in variants if VARIANTS[v].get("store") != "distilw"]
    if args.action == "run":
        import torch

        torch.set_num_threads(1)
        index, count = (int(x) for x in args.shard.split("/"))
        # a variant's seeds one after another: a stopped benchmark leaves whole variants
        jobs = [(t, v, s) for t in tasks for v in variants for s in seeds]
        stores = {t: align(t, args.work, args.distilled, args.distilled_words) for t in tasks}
        for i, (task, variant, seed) in enumerate(jobs):
            if i % count == index:
                out = train_one(task, variant, seed, stores[task], args.work)
                acc = json.loads((out / "metrics.json").read_text())["test"]["accuracy"]
                print(f"{task} {variant} seed {seed}: test {100 * acc:.1f}", flush=True)
        return 0
    table = collect(args.work, tasks, seeds)
    if args.keep_earlier and (RESULTS / "levers.json").is_file():
        # rows whose runs are no longer in the work dir, as the last report had them (each
        # row keeps its own commits, dates and load)
        earlier = json.loads((RESULTS / "levers.json").read_text(encoding="utf-8"))["results"]
        for task in tasks:
            new = table.get(task, {})
            table[task] = {**{k: v for k, v in earlier.get(task, {}).items() if k not in new},
                           **new}
    # the verdict compares front ends at the same budget and encoder: the 30-epoch and BiLSTM
    # rows are side checks
    verdicts = {t: verdict({k: v for k, v in rows.items() if "@" not in k and ":" not in
                            k.replace("single:", "")})
                for t, rows in table.items()}
    learned = {t: verdict({k.removeprefix("learned:"): v for k, v in rows.items()
                           if k.startswith("learned:")},
                          {k: v for k, v in rows.items() if "@" not in k})
               for t, rows in table.items()}
    every = [r for rows in table.values() for r in rows.values()]
    meta = {"dates": ", ".join(sorted({d for r in every for d in r["dates"]})),
            "commits": ", ".join(f"`{c}`" for c in sorted({c for r in every
                                                             for c in r["commits"]})),
            "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, CPU",
            "load": statistics.fmean(r["load"] for r in every), "seeds": seeds,
            "settings": ", ".join(f"{k}={v}" for k, v in SETTINGS.items())}
    RESULTS.mkdir(exist_ok=True)
    _write(RESULTS / "levers.md", markdown(table, verdicts, meta, learned))
    _write(RESULTS / "levers.json", json.dumps(
        {"meta": meta, "variants": VARIANTS, "results": table, "verdicts": verdicts,
         "verdicts_learned": learned}, indent=1))
    plot(table, RESULTS / "levers.png")
    print((RESULTS / "levers.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
