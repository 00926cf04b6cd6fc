"""One model's training time and accuracy, this checkout against an older one, in the same run.

    python benchmarks/bench_training_pace.py --old-code /path/to/old/checkout \\
        [--tasks debian,fortunes] [--seeds 0,1,2] [--old-args "--preset fast --teacher-members 0"]

For each task and seed, ``metaprep train`` runs as a user runs it, once with the code of
``--old-code`` (put first on PYTHONPATH) and its ``--old-args``, once with this checkout and
``--new-args``, in turn, one torch thread each, one process at a time. Each run reports its wall
time, its CPU time (user + system of the process: the work itself, robust on a shared machine),
the epochs it ran, its test accuracy (from its metrics.json) and its run directory's size. The
stores are bench_frontier.py's (``benchmarks/data/frontier/<task>/store.h5``: run it, or its
``--quick``, once first). Results: ``benchmarks/results/training-pace.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_frontier import commit, dir_bytes, machine_line  # noqa: E402

DATA = HERE / "data" / "real"
WORK = HERE / "data" / "pace"


def one_run(code: Path | None, args: list[str], task: str, seed: int, out: Path) -> dict[str, Any]:
    """``metaprep train`` with ``code`` first on PYTHONPATH (None: this checkout)."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")])
    store = HERE / "data" / "frontier" / task / "store.h5"
    cmd = [sys.executable, "-m", "metaprep", "train", "--store", str(store),
           "--train", str(DATA / f"{task}.train.tsv"), "--dev", str(DATA / f"{task}.dev.tsv"),
           "--test", str(DATA / f"{task}.test.tsv"), "--seed", str(seed), "--threads", "1",
           "--quiet", "-o", str(out), *args]
    before = os.times()
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    # run from a neutral folder: `python -m` puts the working directory first on sys.path,
    # where this checkout's metaprep would shadow the old code
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False,
                          cwd=out.parent)
    wall = time.perf_counter() - start
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(cmd)}\n{done.stderr[-2000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall_s": wall,
            "cpu_s": (after.children_user - before.children_user)
            + (after.children_system - before.children_system),
            "epochs": len(metrics["epochs"]), "test_accuracy": metrics["test"]["accuracy"],
            "run_dir_mb": dir_bytes(out) / 1e6}


def summary(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = [r[key] for r in rows]
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# One model's training pace: {result['old_code']} against this checkout", "",
             f"Measured {result['started']} .. {result['finished']} at commit "
             f"`{result['commit']}`; seeds {result['seeds']}; one torch thread, one run at a "
             "time, old and new in turn.", f"Machine before: {result['machine_before']}.",
             f"Machine after: {result['machine_after']}.", "",
             f"- old: `{result['old_args']}` with the code of `{result['old_code']}` "
             f"(commit `{result['old_commit']}`)", f"- new: `{result['new_args']}`", "",
             "| task | code | test accuracy (%) | wall (s) | CPU (s) | epochs | run dir (MB) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for task, sides in result["tasks"].items():
        for side in ("old", "new"):
            rows = sides[side]
            acc, acc_sd = summary(rows, "test_accuracy")
            wall, wall_sd = summary(rows, "wall_s")
            cpu, cpu_sd = summary(rows, "cpu_s")
            ep = statistics.mean(r["epochs"] for r in rows)
            mb = statistics.mean(r["run_dir_mb"] for r in rows)
            lines.append(f"| {task} | {side} | {100 * acc:.2f} ± {100 * acc_sd:.2f} | "
                         f"{wall:.1f} ± {wall_sd:.1f} | {cpu:.1f} ± {cpu_sd:.1f} | {ep:.1f} | "
                         f"{mb:.0f} |")
        wall_x = summary(sides["old"], "wall_s")[0] / summary(sides["new"], "wall_s")[0]
        cpu_x = summary(sides["old"], "cpu_s")[0] / summary(sides["new"], "cpu_s")[0]
        lines.append(f"| {task} | old / new | | {wall_x:.2f}x | {cpu_x:.2f}x | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-code", required=True, help="a checkout of the older commit")
    parser.add_argument("--old-args", default="--preset fast --teacher-members 0")
    parser.add_argument("--new-args", default="--preset fast")
    parser.add_argument("--tasks", default="debian,fortunes")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--results", default=str(HERE / "results" / "training-pace"))
    args = parser.parse_args()
    old_code = Path(args.old_code).resolve()
    seeds = [int(s) for s in args.seeds.split(",")]
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit(),
        "old_code": old_code.name, "old_commit": subprocess.run(
            ["git", "-C", str(old_code), "rev-parse", "--short", "HEAD"], capture_output=True,
            text=True, check=False).stdout.strip(),
        "old_args": args.old_args, "new_args": args.new_args, "seeds": args.seeds,
        "machine_before": machine_line(), "tasks": {}}
    for task in args.tasks.split(","):
        sides: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
        for seed in seeds:
            for side, code, extra in (("old", old_code, args.old_args),
                                      ("new", None, args.new_args)):
                row = one_run(code, shlex.split(extra), task, seed,
                              WORK / task / f"{side}-seed{seed}")
                print(f"{task} seed {seed} {side}: {row}", file=sys.stderr)
                sides[side].append(row)
        result["tasks"][task] = sides
    result.update(finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine_after=machine_line())
    Path(args.results + ".json").write_text(json.dumps(result, indent=1) + "\n")
    Path(args.results + ".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
