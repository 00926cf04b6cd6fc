"""Does averaging several models of one recipe beat one of them, and by how much?

    python benchmarks/bench_ensembles.py --task debian --store STORE.h5 [--preset fast]
        [--seeds 0-8] [--sizes 2,3] [--work DIR] [--results benchmarks/results/ensembles]

Trains one model per seed with `metaprep train --preset P --seed S` (lr 1e-3, one thread, as
bench_frontier.py does) and exports it, reusing a finished model directory in ``--work``. Then,
with the runtime alone, scores each model on the test split, and the average of the
probabilities of disjoint groups of consecutive seeds ({0,1,2}, {3,4,5}, ... for size 3): mean
and sample sd over the models, and over the groups of each size. The data are
``--data``/TASK.{train,dev,test}.tsv (benchmarks/realdata.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def _train(args: argparse.Namespace, seed: int) -> Path:
    model = args.work / "models" / f"{args.preset}-seed{seed}"
    if (model / "manifest.json").is_file():
        return model
    run = args.work / "runs" / f"{args.preset}-seed{seed}"
    data = {s: str(args.data / f"{args.task}.{s}.tsv") for s in ("train", "dev", "test")}
    cmd = [sys.executable, "-m", "metaprep", "train", "--store", str(args.store),
           "--train", data["train"], "--dev", data["dev"], "--test", data["test"],
           "--preset", args.preset, "--lr", "0.001", "--seed", str(seed), "--threads", "1",
           "--quiet", "-o", str(run)]
    print(f"training seed {seed}", file=sys.stderr)
    subprocess.run(["rm", "-rf", str(run)], check=True)
    subprocess.run(cmd, check=True)
    subprocess.run([sys.executable, "-m", "metaprep", "export-onnx", str(run), "-o", str(model),
                    "--force", "--no-progress"], check=True)
    return model


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {sd:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--seeds", default="0-8")
    ap.add_argument("--sizes", default="2,3")
    ap.add_argument("--data", type=Path, default=HERE / "data" / "real")
    ap.add_argument("--work", type=Path, default=HERE / "data" / "ensembles")
    ap.add_argument("--results", type=Path, default=None,
                    help="write RESULTS.json (figures, date, commit) as well")
    args = ap.parse_args()
    args.work = args.work / args.task
    from metaprep.runtime import Model

    rows = (args.data / f"{args.task}.test.tsv").read_text(encoding="utf-8").splitlines()[1:]
    texts = [r.rsplit("\t", 1)[0] for r in rows]
    gold = np.array([r.rsplit("\t", 1)[1] for r in rows])
    seeds = _seeds(args.seeds)
    probs, labels = {}, None
    for seed in seeds:
        model = Model(_train(args, seed), threads=2)
        probs[seed] = model.predict_proba(texts)
        labels = labels or model.labels
        assert model.labels == labels
    names = np.array(labels)

    def acc(p: np.ndarray) -> float:
        return float(100 * np.mean(names[p.argmax(1)] == gold))

    single = [acc(probs[s]) for s in seeds]
    report = {"task": args.task, "preset": args.preset, "test_texts": len(texts),
              "single": dict(zip(map(str, seeds), single, strict=True)), "groups": {}}
    print(f"{args.task}, {len(texts):,} test texts, preset {args.preset}")
    print(f"  one model ({len(seeds)} seeds): {_mean_sd(single)}")
    for size in (int(k) for k in args.sizes.split(",")):
        groups = [seeds[i:i + size] for i in range(0, len(seeds) - size + 1, size)]
        scores = [acc(sum(probs[s] for s in g)) for g in groups]
        report["groups"][str(size)] = [{"seeds": g, "accuracy": a}
                                       for g, a in zip(groups, scores, strict=True)]
        shown = ", ".join(f"{g}: {a:.2f}" for g, a in zip(groups, scores, strict=True))
        print(f"  average of {size} ({len(groups)} groups): {_mean_sd(scores)}   [{shown}]")
    if args.results is not None:
        write_report(args.results, args.task, report)


def write_report(results: Path, task: str, report: dict) -> None:
    """RESULTS-TASK.json: the figures, with the date and the commit they were measured at."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()
    report["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report["commit"] = commit
    path = results.with_name(f"{results.name}-{task}.json")
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
