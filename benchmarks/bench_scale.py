"""Kaggle scale end to end: align -> train -> export -> serve on synthetic stand-ins of a
competition entrant's inputs, each stage a child process measured from outside.

    python benchmarks/bench_scale.py --scale 0.01              # quick: ~22k-row sources
    python benchmarks/bench_scale.py --scale 1.0 --profile     # the real sizes (~17 GB inputs)

Inputs (benchmarks/scale_inputs.py, cached by their parameters under --data): GloVe 840B-,
GoogleNews-, paragram- and wiki-news-like files (2.2M, 3M gzipped, 1.7M, 1M rows x 300, quirks
included) and 1.3M / 65k / 65k question-like texts with 2 labels, all times --scale.

Stages (``--stages`` picks some; each is a ``metaprep`` command, as a user runs it):

    align-task   the four sources over the task's words (train, dev and test; --case fallback,
                 since paragram is lowercase; --encoding-errors replace: paragram is latin-1)
    align-union  the same sources over the union of all their words (--vocab union; stored in
                 --union-dtype, float16 by default: at float32 it would not fit the disk budget)
    train        --preset fast --teacher-members 0 on the task store (--epochs to cap it)
    export       export-onnx of that run
    serve        Model(...) open time, the time until its text graph serves (Model.ready),
                 then predict_proba on --serve-texts texts (one call)
    train-full   --preset fast with its teacher (3 more models), if --full-preset
    union-model  train (1 epoch on --union-train-texts texts, --union-sources) + export +
                 open over the union store: a model of the union's vocabulary (millions of
                 words)

Per stage: wall time, CPU time, peak anonymous memory and peak RSS of the process tree (polled
from /proc every --poll s; benchmarks/procwatch.py), the kernel's peak RSS, and the disk used by
its output. A stage past --max-anon-gb of anonymous memory or --max-minutes is killed and
recorded as stopped. --profile attaches py-spy to the slow stages' processes (no extra run);
their top frames go in the results. Results: results/scale.md and scale.json (--results).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from procwatch import Measured, run_measured  # noqa: E402
from profsummary import peak_allocations, top_frames  # noqa: E402
from scale_inputs import Inputs, inputs  # noqa: E402

ROOT = HERE.parent
STAGES = ("align-task", "align-union", "train", "export", "serve", "train-full", "union-model")
SERVE = r"""
import json, sys, time
t0 = time.perf_counter()
from metaprep.runtime import Model
model_dir, path, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t1 = time.perf_counter()
model = Model(model_dir, threads=threads)
t2 = time.perf_counter()
model.ready()  # a large text graph loads on a thread: throughput is measured once it serves
ready = time.perf_counter()
base = [line.rsplit("\t", 1)[0] for line in open(path, encoding="utf-8").read().splitlines()[1:]]
texts = (base * (n // max(1, len(base)) + 1))[:n]
model.predict_proba(texts[:1000])
t3 = time.perf_counter()
probs = model.predict_proba(texts)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_s": t2 - t1, "ready_s": ready - t1,
                  "text_path": model.text_path, "texts": n, "predict_s": t4 - t3,
                  "texts_per_s": n / (t4 - t3), "rows": len(probs)}))
"""


def _metaprep(*args: str) -> list[str]:
    return [sys.executable, "-m", "metaprep", *args]


def _disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _machine() -> dict[str, object]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem = next(int(line.split()[1]) * 1024 for line in
               Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_total_gb": round(mem / 1e9, 1),
            "loadavg": os.getloadavg()}


def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout
    sha = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return sha + ("+dirty" if git("status", "--porcelain", "--", "metaprep").strip() else "")


class Bench:
    def __init__(self, args: argparse.Namespace, data: Inputs,
                 saved: Callable[[list[dict[str, object]]], None]) -> None:
        self.args, self.data, self.saved = args, data, saved
        self.work = args.data / (f"work-scale{args.scale:g}" + (f"-{args.tag}" if args.tag else ""))
        self.work.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, object]] = []
        self.env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep
                    + os.environ.get("PYTHONPATH", "")}

    def say(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    def stage(self, name: str, cmd: list[str], output: Path | None, *, note: str = "",
              fresh: tuple[Path, ...] = ()) -> Measured:
        for p in fresh:  # outputs of an earlier run: a stage never reuses them
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        self.say(f"{name}: {' '.join(cmd[2:])}")
        log = self.work / "logs" / f"{name}.log"
        mem = None
        if name in self.args.memray and cmd[1:3] == ["-m", "metaprep"]:
            mem = self.work / "profiles" / f"{name}.memray"
            mem.parent.mkdir(parents=True, exist_ok=True)
            cmd = [cmd[0], "-m", "memray", "run", "--aggregate", "-q", "-f", "-o", str(mem),
                   *cmd[1:]]
            note = "; ".join(x for x in (note, "under memray: times not comparable") if x)
        spy = None
        if self.args.profile and name in self.args.profile_stages:
            spy = self.work / "profiles" / f"{name}.txt"
        m = run_measured(cmd, log=log, env=self.env, poll=self.args.poll,
                         max_anon=self.args.max_anon_gb * 1e9,
                         max_seconds=self.args.max_minutes * 60, report=self.say,
                         profile=spy, profile_rate=self.args.profile_rate)
        disk = _disk(output) if output is not None and m.ok else 0
        row: dict[str, object] = {
            "stage": name, "exit": m.exit_code, "stopped": m.stopped,
            "wall_s": round(m.wall_s, 1), "cpu_s": round(m.cpu_s, 1),
            "peak_anon_gb": round(m.peak_anon / 1e9, 2), "peak_rss_gb": round(m.peak_rss / 1e9, 2),
            "peak_file_gb": round(m.peak_file / 1e9, 2), "hwm_gb": round(m.hwm / 1e9, 2),
            "maxrss_gb": round(m.maxrss / 1e9, 2), "disk_gb": round(disk / 1e9, 3),
            "output": str(output) if output else "", "note": note,
            "cmd": cmd[cmd.index("metaprep") + 1:] if "metaprep" in cmd else cmd[2:],
            "log": str(log), "samples": m.samples,
            "timeline": m.timeline[:: max(1, len(m.timeline) // 200)],
        }
        if spy is not None and spy.exists():
            row["profile"] = str(spy)
            row["top_frames"] = top_frames(spy, n=12)
        if mem is not None and mem.exists() and m.exit_code == 0:
            row["memray_file"] = str(mem)
            row["memray"] = peak_allocations(mem, n=12)
        if not m.ok:
            row["log_tail"] = log.read_text(errors="replace")[-1500:]
            self.say(f"  FAILED (exit {m.exit_code}{', ' + m.stopped if m.stopped else ''}); "
                     f"see {log}")
        self.say(f"  {m.wall_s:.1f} s, anon {m.peak_anon / 1e9:.2f} GB, RSS "
                 f"{m.peak_rss / 1e9:.2f} GB (HWM {m.hwm / 1e9:.2f}), disk {disk / 1e9:.2f} GB")
        self.rows.append(row)
        self.saved(self.rows)  # results so far: a long run stopped later keeps them
        return m

    # --- the stages -----------------------------------------------------------------------------
    def sources(self) -> list[str]:
        return [f"{s.name}={s.path}" for s in self.data.sources] + [
            x for s in self.data.sources for x in ("--format", f"{s.name}={s.fmt}")]

    def align_task(self) -> Measured:
        out = self.work / "task.h5"
        d = self.data
        return self.stage("align-task", _metaprep(
            "align", *self.sources(), "--vocab", str(d.train), "--vocab", str(d.dev),
            "--vocab", str(d.test), "--case", "fallback", "--encoding-errors", "replace",
            "-o", str(out)), out, fresh=(out,))

    def align_union(self) -> Measured | None:
        out = self.work / "union.h5"
        out.unlink(missing_ok=True)
        rows = sum(s.rows for s in self.data.sources)  # at most; the union is smaller
        need = rows * (4 * 300 * (2 if self.args.union_dtype == "float16" else 4) + 40)
        free = shutil.disk_usage(self.work).free
        if need > free - 2e9:
            self.rows.append({"stage": "align-union", "stopped": f"not run: up to {need / 1e9:.0f}"
                              f" GB needed, {free / 1e9:.0f} GB free", "exit": None})
            return None
        return self.stage("align-union", _metaprep(
            "align", *self.sources(), "--vocab", "union", "--encoding-errors", "replace",
            "--dtype", self.args.union_dtype, "-o", str(out)), out,
            note=f"--dtype {self.args.union_dtype}")

    def train(self, name: str, store: Path, out: Path, extra: list[str],
              train: Path | None = None) -> Measured:
        d = self.data
        cmd = _metaprep("train", "--store", str(store), "--train", str(train or d.train),
                        "--dev", str(d.dev), "--test", str(d.test), "--preset", "fast",
                        "--threads", str(self.args.train_threads), *extra, "-o", str(out))
        return self.stage(name, cmd, out, note=" ".join(extra), fresh=(out,))

    def export(self, name: str, run: Path, out: Path) -> Measured:
        return self.stage(name, _metaprep("export-onnx", str(run), "-o", str(out)), out,
                          fresh=(out,))

    def serve(self, name: str, model: Path, texts: int) -> Measured:
        cmd = [sys.executable, "-c", SERVE, str(model), str(self.data.test), str(texts),
               str(self.args.threads)]
        m = self.stage(name, cmd, None, note=f"{texts:,} texts")
        log = Path(str(self.rows[-1]["log"]))
        if m.ok:
            lines = log.read_text().strip().splitlines()
            self.rows[-1]["serve"] = json.loads(lines[-1])
        return m

    def head_of_train(self, n: int) -> Path:
        """The first ``n`` training texts: the union model is about its vocabulary's size."""
        out = self.work / f"train-head{n}.tsv"
        if not out.exists():
            with open(self.data.train, encoding="utf-8") as f:
                lines = [line for _, line in zip(range(n + 1), f, strict=False)]
            out.write_text("".join(lines), encoding="utf-8")
        return out

    def run(self) -> None:
        a, w = self.args, self.work
        epochs = ["--epochs", str(a.epochs)] if a.epochs else []
        if "align-task" in a.stages:
            self.align_task()
        if "align-union" in a.stages:
            self.align_union()
        run, model = w / "run-fast", w / "model-fast"
        if "train" in a.stages:
            self.train("train", w / "task.h5", run, ["--teacher-members", "0", *epochs])
        if "export" in a.stages:
            self.export("export", run, model)
        if "serve" in a.stages:
            self.serve("serve", model, a.serve_texts)
        if "train-full" in a.stages:
            self.train("train-full", w / "task.h5", w / "run-fast-teacher", epochs)
        if "union-model" in a.stages:
            urun, umodel = w / "run-union", w / "model-union"
            sources = ["--set", f"sources={a.union_sources}"] if a.union_sources else []
            m = self.train("union-train", w / "union.h5", urun,
                           ["--teacher-members", "0", "--epochs", "1", *sources],
                           train=self.head_of_train(a.union_train_texts))
            if m.ok:
                m = self.export("union-export", urun, umodel)
            if m.ok:
                self.serve("union-serve", umodel, min(a.serve_texts, 10_000))


def _table(rows: list[dict[str, object]]) -> list[str]:
    out = ["| stage | wall (s) | CPU (s) | peak anon (GB) | peak RSS (GB) | kernel HWM (GB) "
           "| disk (GB) | notes |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        if r.get("exit") is None:
            out.append(f"| {r['stage']} | | | | | | | {r['stopped']} |")
            continue
        notes = [str(r.get("note") or "")]
        if r.get("stopped"):
            notes.append(f"**stopped: {r['stopped']}**")
        elif r["exit"] != 0:
            notes.append(f"**failed, exit {r['exit']}**")
        serve = r.get("serve")
        if isinstance(serve, dict):
            ready = (f" (text path {serve['text_path']} after {serve['ready_s']:.1f} s)"
                     if "ready_s" in serve else "")
            notes.append(f"open {serve['open_s']:.2f} s{ready}, "
                         f"{serve['texts_per_s']:,.0f} texts/s")
        out.append(f"| {r['stage']} | {r['wall_s']} | {r['cpu_s']} | {r['peak_anon_gb']} | "
                   f"{r['peak_rss_gb']} | {r['hwm_gb']} | {r['disk_gb']} | "
                   f"{'; '.join(n for n in notes if n)} |")
    return out


def write_results(args: argparse.Namespace, data: Inputs, rows: list[dict[str, object]],
                  before: dict[str, object], gen_s: float, *, quiet: bool = False) -> None:
    now = dt.datetime.now(dt.UTC)
    meta = {"date": now.isoformat(timespec="seconds"), "commit": _commit(), "machine": before,
            "loadavg_after": os.getloadavg(), "argv": sys.argv[1:], "scale": args.scale,
            "inputs": data.manifest, "generate_s": gen_s, "stages": rows}
    args.results.mkdir(parents=True, exist_ok=True)
    stem = args.results / ("scale" if args.tag is None else f"scale-{args.tag}")
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str))
    text = _markdown(stem, meta)
    if not quiet:
        print(text)


def _markdown(stem: Path, meta: dict[str, Any]) -> str:
    m, inputs = meta["machine"], meta["inputs"]
    head = [f"# bench_scale.py, --scale {meta['scale']:g}", "",
            f"{meta['date'][:16].replace('T', ' ')} UTC, commit {meta['commit']}, {m['nproc']} "
            f"cores ({m['cpu']}), {m['mem_total_gb']} GB RAM, load average "
            f"{m['loadavg'][0]:.1f} before, {meta['loadavg_after'][0]:.1f} after; "
            f"`python benchmarks/bench_scale.py {' '.join(meta['argv'])}`", "",
            "Inputs (synthetic; generated in "
            f"{sum(v for v in inputs.get('seconds', {}).values()):.0f} s, cached):", "",
            "| source | rows x dim | format | GB |", "|---|---|---|---:|"]
    for name, f in inputs.get("files", {}).items():
        head.append(f"| {name} | {f['rows']:,} x {f['dim']} | {f['fmt']} | "
                    f"{f['bytes'] / 1e9:.2f} |")
    c = inputs["counts"]
    head += ["", f"Task: {c['train']:,} train / {c['dev']:,} dev / {c['test']:,} test texts, "
             "2 labels.", "", *_table(meta["stages"]), ""]
    for r in meta["stages"]:
        if r.get("top_frames"):
            head += [f"py-spy, `{r['stage']}` (share of the samples of all Python threads, idle "
                     "ones left out, in which the frame is on the stack; self = innermost):", "",
                     "| frame | total | self |", "|---|---:|---:|"]
            head += [f"| `{f}` | {t:.0%} | {s:.0%} |" for f, t, s in r["top_frames"]]
            head.append("")
        mem = r.get("memray")
        if isinstance(mem, dict):
            head += [f"memray, `{r['stage']}`: peak {mem['peak_bytes'] / 1e9:.2f} GB tracked, of "
                     f"which {mem.get('mapped_bytes', 0) / 1e9:.2f} GB files mapped whole; "
                     "live at the peak, by innermost metaprep frame:", "",
                     "| site | GB | allocations | stack (innermost first) |", "|---|---:|---:|---|"]
            head += [f"| `{site}` | {size / 1e9:.3f} | {count:,} | {stack} |"
                     for site, size, count, stack in mem["sites"]]
            head.append("")
    text = "\n".join(head)
    stem.with_suffix(".md").write_text(text)
    return text


def render(args: argparse.Namespace) -> int:
    """Rewrite the .md of an earlier run from its .json, the profiles summarised again."""
    stem = args.results / ("scale" if args.tag is None else f"scale-{args.tag}")
    meta = json.loads(stem.with_suffix(".json").read_text())
    for r in meta["stages"]:
        if r.get("profile") and Path(r["profile"]).exists():
            r["top_frames"] = top_frames(Path(r["profile"]), n=12)
        mem = r.get("memray_file") or (str(Path(r["log"]).parent.parent / "profiles"
                                           / f"{r['stage']}.memray") if r.get("log") else "")
        if mem and Path(mem).exists() and r.get("exit") == 0:
            r["memray_file"], r["memray"] = mem, peak_allocations(Path(mem), n=12)
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str))
    _markdown(stem, meta)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python benchmarks/bench_scale.py --scale 0.01 "
                                 "--stages align-task,train,export,serve",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.01, help="row counts x this (1.0: real)")
    ap.add_argument("--data", type=Path, default=HERE / "data" / "scale",
                    help="inputs and outputs (big: keep outside any repository at scale 1)")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--tag", help="results go to scale-TAG.{md,json}, outputs to their own folder")
    ap.add_argument("--stages", default="align-task,align-union,train,export,serve",
                    help=f"comma-separated, of: {', '.join(STAGES)}")
    ap.add_argument("--epochs", type=int, default=0, help="cap training (0: the preset's)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="serving threads (Model(threads=...))")
    ap.add_argument("--train-threads", type=int, default=1,
                    help="torch threads of train (on 2 busy cores, 2 threads ran 10x slower)")
    ap.add_argument("--union-train-texts", type=int, default=50_000,
                    help="the union model trains 1 epoch on this many texts")
    ap.add_argument("--serve-texts", type=int, default=100_000)
    ap.add_argument("--union-dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--union-sources", default="glove",
                    help="the union model's sources (--set sources=...; '' for all)")
    ap.add_argument("--max-anon-gb", type=float, default=16.0)
    ap.add_argument("--max-minutes", type=float, default=60.0)
    ap.add_argument("--poll", type=float, default=0.1, help="memory polling interval (s)")
    ap.add_argument("--profile", action="store_true", help="py-spy on the slow stages")
    ap.add_argument("--profile-stages", default="align-task,align-union,train,export,"
                    "union-train,union-export")
    ap.add_argument("--profile-rate", type=int, default=20, help="py-spy samples per second")
    ap.add_argument("--render", action="store_true", help="only rewrite the results .md from "
                    "the .json (profiles summarised again)")
    ap.add_argument("--memray", default="", help="stages run under memray (a separate run: "
                    "it slows them), their allocations at the peak in the results")
    args = ap.parse_args(argv)
    args.stages = [s for s in args.stages.split(",") if s]
    bad = [s for s in args.stages if s not in STAGES]
    if bad:
        ap.error(f"unknown stage(s) {', '.join(bad)}; known: {', '.join(STAGES)}")
    args.profile_stages = args.profile_stages.split(",")
    args.memray = [s for s in args.memray.split(",") if s]
    if args.render:
        return render(args)
    before = _machine()
    t0 = time.monotonic()
    say: Callable[[str], None] = lambda m: print(m, flush=True)  # noqa: E731
    data = inputs(args.data / "inputs", scale=args.scale, report=say)
    gen_s = time.monotonic() - t0
    bench = Bench(args, data, lambda rows: write_results(args, data, rows, before, gen_s,
                                                         quiet=True))
    try:
        bench.run()
    finally:
        write_results(args, data, bench.rows, before, gen_s)
    return 0 if all(r.get("exit") in (0, None) for r in bench.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
