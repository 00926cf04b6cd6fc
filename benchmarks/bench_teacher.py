"""Does a model taught by an ensemble beat the same model trained on the labels alone?

    python benchmarks/bench_teacher.py --task debian --store STORE.h5
        [--seeds 0,1,2] [--grid 1:2,0.9:2,0.7:2,1:1,0.5:1] [--teachers DIR] [--work DIR]
        [--results benchmarks/results/teacher]

For each seed S the teacher is ``--teachers``/accurate-seedS, the `accurate` preset's ensemble
of three `fast` models (bench_frontier.py leaves one there; a missing one is trained with
`metaprep train --preset accurate --seed S`). The untaught model of seed S is that ensemble's
member 0: the same config and seed as `--preset fast --teacher-members 0`, bit for bit. Each
(weight, temperature) of ``--grid`` trains `metaprep train --preset fast --teacher TEACHER
--teacher-weight W --teacher-temperature T --seed S` (lr 1e-3, one thread, as bench_frontier.py
does) into ``--work``, reusing a finished run there. Test accuracy is each run's own (the best
dev epoch's weights, scored by torch at the end of training); mean and sample sd over seeds.
The data are ``--data``/TASK.{train,dev,test}.tsv (benchmarks/realdata.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench_ensembles import _mean_sd, write_report

HERE = Path(__file__).resolve().parent


def _test_accuracy(run: Path) -> float | None:
    path = run / "metrics.json"
    if not path.is_file():
        return None
    test = json.loads(path.read_text(encoding="utf-8")).get("test")
    return None if not test else 100 * float(test["accuracy"])


def _metaprep(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "metaprep", *args], check=True)


def _data_args(args: argparse.Namespace) -> list[str]:
    data = {s: str(args.data / f"{args.task}.{s}.tsv") for s in ("train", "dev", "test")}
    return ["train", "--store", str(args.store), "--train", data["train"], "--dev",
            data["dev"], "--test", data["test"], "--lr", "0.001", "--threads", "1", "--quiet"]


def _teacher(args: argparse.Namespace, seed: int) -> Path:
    run = args.teachers / f"accurate-seed{seed}"
    if _test_accuracy(run) is None:
        print(f"training the teacher of seed {seed}: {run}", file=sys.stderr)
        subprocess.run(["rm", "-rf", str(run)], check=True)
        _metaprep([*_data_args(args), "--preset", "accurate", "--seed", str(seed), "-o",
                   str(run)])
    return run


def _student(args: argparse.Namespace, seed: int, weight: float, temperature: float) -> float:
    run = args.work / f"w{weight:g}-t{temperature:g}-s{seed}"
    got = _test_accuracy(run)
    if got is not None:
        return got
    print(f"training {run.name}", file=sys.stderr)
    subprocess.run(["rm", "-rf", str(run)], check=True)
    _metaprep([*_data_args(args), "--preset", "fast", "--seed", str(seed), "--teacher",
               str(_teacher(args, seed)), "--set", f"teacher_weight={weight}",
               "--set", f"teacher_temperature={temperature}", "-o", str(run)])
    got = _test_accuracy(run)
    assert got is not None, run
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--grid", default="1:2,0.9:2,0.7:2,1:1,0.5:1",
                    help="teacher weight:temperature pairs")
    ap.add_argument("--data", type=Path, default=HERE / "data" / "real")
    ap.add_argument("--teachers", type=Path, default=None,
                    help="[benchmarks/data/frontier/TASK/runs]")
    ap.add_argument("--work", type=Path, default=HERE / "data" / "teacher")
    ap.add_argument("--results", type=Path, default=None,
                    help="write RESULTS-TASK.json (figures, date, commit) as well")
    args = ap.parse_args()
    args.work = args.work / args.task
    args.teachers = args.teachers or HERE / "data" / "frontier" / args.task / "runs"
    seeds = [int(s) for s in args.seeds.split(",")]
    grid = [tuple(float(x) for x in pair.split(":")) for pair in args.grid.split(",")]

    teachers = {s: _teacher(args, s) for s in seeds}
    report: dict = {"task": args.task, "seeds": seeds, "rows": {}}
    rows = {"teacher (accurate: ensemble of 3)": [_test_accuracy(teachers[s]) for s in seeds],
            "untaught (its member 0)": [_test_accuracy(teachers[s] / "members" / "0")
                                        for s in seeds]}
    for weight, temperature in grid:
        rows[f"taught, weight {weight:g}, T {temperature:g}"] = [
            _student(args, s, weight, temperature) for s in seeds]
    print(f"{args.task}: test accuracy (%), seeds {args.seeds}")
    for name, values in rows.items():
        report["rows"][name] = values
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name}: {_mean_sd(values)}   [{shown}]")
    if args.results is not None:
        write_report(args.results, args.task, report)


if __name__ == "__main__":
    main()
