"""One training step taken apart: where the time of a real run's step goes.

    python benchmarks/bench_step_profile.py [--task debian] [--preset fast] [--set KEY=VALUE]...
        [--steps 50] [--warmup 5] [--threads 1] [--output benchmarks/results/step-profile]
    python benchmarks/bench_step_profile.py --store S.h5 --train T.tsv --dev D.tsv [...]

It runs metaprep's own training loop (``metaprep.learn.train.train``, whatever code is installed
or on PYTHONPATH: run it before and after a change) on a real task and times each part of every
step, by wrapping the functions the loop calls rather than copying them:

* batching and padding: the loop's ``collate`` (the per-epoch batch plan, ``bucket_batches``,
  is reported apart: it runs once per epoch);
* each frozen source's gather: ``F.embedding`` / ``F.embedding_bag`` on that source's table;
* the learned source's word table (its module's forward) and its bigram buckets
  (``MetaEmbedder.pair_term``: hash, gather, mask, projection);
* the rest of the front end (norms, projections, the mix), the encoder, the classifier head;
* the loss (``cross_entropy``; with a teacher, ``distill_loss`` and ``teacher_rows``);
* backward (``Tensor.backward``), the gradient clip, ``zero_grad``;
* the optimizer step, each inner optimizer apart (learn/optim.py's ``Split``: dense and sparse);
* other: the rest of the step's wall time (progress counters, ``loss.item()``, seeding).

Times are exclusive (a part nested in another is subtracted from it). A part whose hook never
fired (the code changed) is listed as not found and its time lands in "other". The first
``--warmup`` steps are left out; for each part the median and mean ms over the other steps, and
its share of the mean step. A preset that trains a teacher (``teacher_members``) is profiled as
its taught model: the teacher's probabilities are a random stand-in (the loss costs the same
whatever they are), the teacher members' own steps are this step without the distillation term.

The data: ``--task`` (benchmarks/realdata.py's files, the GloVe + MiniLM store that
bench_frontier.py builds, in ``benchmarks/data/frontier/<task>/``, reused when there), or
``--store``/``--train``/``--dev``. Torch runs ``--threads`` threads (default 1: the per-part
times are then the work itself). Results: ``--output``.md and .json, with date, commit, machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

OTHER = "other (loop bookkeeping)"
# the parts in the order of a step; the frozen sources' gathers come after the batching
ORDER = ["batching + padding", "learned words", "learned bigram buckets",
         "front: norms, projections, mix", "encoder", "classifier head", "loss", "backward",
         "gradient clip", "zero_grad"]


class _Enough(Exception):
    """Raised from the optimizer step once the steps asked for are measured."""


class Clock:
    """Exclusive wall time per named part within each step; a step ends with its optimizer
    step (the loop's ``opt.step()``)."""

    def __init__(self, steps: int) -> None:
        self.want = steps
        self.stack: list[list[Any]] = []  # [name, start, CPU start, children's wall, CPU]
        self.current: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)  # this thread's CPU time per part
        self.steps: list[dict[str, float]] = []
        self.steps_cpu: list[dict[str, float]] = []
        self.shapes: list[tuple[int, int, int]] = []  # per step: batch, padded T, real tokens
        self.start: float | None = None  # of the step under way
        self.start_cpu = 0.0
        self.began: float | None = None  # the first step's start
        self.fired: set[str] = set()
        self.once: dict[str, float] = {}

    def enter(self, name: str) -> None:
        if self.start is None:
            self.start, self.start_cpu = time.perf_counter(), time.thread_time()
            self.began = self.began or self.start
        self.stack.append([name, time.perf_counter(), time.thread_time(), 0.0, 0.0])

    def exit(self) -> None:
        name, start, start_cpu, children, children_cpu = self.stack.pop()
        took, took_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
        self.current[name] += took - children
        self.cpu[name] += took_cpu - children_cpu
        self.fired.add(name)
        if self.stack:
            self.stack[-1][3] += took
            self.stack[-1][4] += took_cpu

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            self.enter(name)
            try:
                return fn(*args, **kwargs)
            finally:
                self.exit()
        return run

    def end_step(self) -> None:
        now, now_cpu = time.perf_counter(), time.thread_time()
        total = now - (self.start if self.start is not None else now)
        self.steps.append({"total": total, **self.current})
        self.steps_cpu.append({"total": now_cpu - self.start_cpu, **self.cpu})
        self.current, self.cpu = defaultdict(float), defaultdict(float)
        self.start, self.start_cpu = now, now_cpu
        if len(self.steps) >= self.want:
            raise _Enough


# --- instrumenting the installed training loop -------------------------------------------------
def _optimizer(clock: Clock, opt: Any) -> Any:
    """Time the optimizer's inner optimizers apart (dense, sparse, ...: any attribute with a
    ``step`` and ``param_groups``, a home-made one too); its own step ends a step."""
    inner = {k: v for k, v in vars(opt).items()
             if callable(getattr(v, "step", None)) and hasattr(v, "param_groups")}
    for key, sub in inner.items():
        sub.step = clock.timed(f"optimizer: {key}", sub.step)
    step = opt.step if inner else clock.timed("optimizer", opt.step)

    def outer(*args: Any, **kwargs: Any) -> Any:
        try:
            return step(*args, **kwargs)
        finally:
            clock.end_step()

    opt.step = outer
    opt.zero_grad = clock.timed("zero_grad", opt.zero_grad)
    return opt


def _model(clock: Clock, model: Any, sources: Sequence[str]) -> dict[int, str]:
    """Hooks on the model's parts; returns the frozen tables' data pointers -> gather names."""
    def hook(module: Any, name: str) -> None:
        if module is not None:
            module.register_forward_pre_hook(lambda *_: clock.enter(name))
            module.register_forward_hook(lambda *_: clock.exit())

    front = getattr(model, "front", None)
    hook(front, "front: norms, projections, mix")
    hook(getattr(front, "learned", None), "learned words")
    hook(getattr(model, "encoder", None), "encoder")
    hook(getattr(model, "classifier", None), "classifier head")
    if front is not None and hasattr(front, "pair_term"):
        front.pair_term = clock.timed("learned bigram buckets", front.pair_term)
    tables = {}
    for name, buf in (front.named_buffers() if front is not None else []):
        if name.startswith("table_") and name[6:].isdigit():
            k = int(name[6:])
            tables[buf.data_ptr()] = f"gather: {sources[k] if k < len(sources) else name}"
    return tables


class Instrumented:
    """Patches the loop's functions for the duration of a ``with`` block, then restores them."""

    def __init__(self, clock: Clock, sources: Sequence[str], teacher: bool) -> None:
        self.clock, self.sources, self.teacher = clock, sources, teacher
        self.saved: list[tuple[Any, str, Any]] = []
        self.tables: dict[int, str] = {}

    def patch(self, owner: Any, name: str, new: Callable[[Any], Any]) -> None:
        if hasattr(owner, name):
            old = getattr(owner, name)
            self.saved.append((owner, name, old))
            setattr(owner, name, new(old))

    def __enter__(self) -> Instrumented:
        import torch
        import torch.nn.functional as F

        import metaprep.learn.train as loop

        clock = self.clock

        def timed(name: str) -> Callable[[Any], Any]:
            return lambda fn: clock.timed(name, fn)

        def collate(fn: Any) -> Any:
            def run(*args: Any, **kwargs: Any) -> Any:
                batch = clock.timed("batching + padding", fn)(*args, **kwargs)
                ids, lengths = getattr(batch, "ids", None), getattr(batch, "lengths", None)
                if ids is not None and lengths is not None and ids.dim() == 2:
                    clock.shapes.append((int(ids.shape[0]), int(ids.shape[1]),
                                         int(lengths.sum())))
                return batch
            return run

        def gather(fn: Any) -> Any:
            def run(inp: Any, weight: Any, *args: Any, **kwargs: Any) -> Any:
                name = self.tables.get(weight.data_ptr())
                if name is None:  # a learned table: its own part holds it
                    return fn(inp, weight, *args, **kwargs)
                return clock.timed(name, fn)(inp, weight, *args, **kwargs)
            return run

        def make_optimizer(fn: Any) -> Any:
            def run(model: Any, cfg: Any, *args: Any, **kwargs: Any) -> Any:
                self.tables = _model(clock, model, list(cfg.sources))
                return _optimizer(clock, fn(model, cfg, *args, **kwargs))
            return run

        def once(name: str) -> Callable[[Any], Any]:
            def wrap(fn: Any) -> Any:
                def run(*args: Any, **kwargs: Any) -> Any:
                    t = time.perf_counter()
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        clock.once.setdefault(name, time.perf_counter() - t)
                return run
            return wrap

        def end_epoch(fn: Any) -> Any:  # dev scoring and checkpoint are no step's time
            def run(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                finally:
                    clock.start, clock.current, clock.cpu = (None, defaultdict(float),
                                                             defaultdict(float))
            return run

        def stand_in(_fn: Any) -> Any:  # random probabilities: the loss costs the same
            def run(run: Any, data: Any, **_: Any) -> Any:
                torch.manual_seed(0)
                return torch.randn(len(data), len(run.labels)).softmax(-1)
            return run

        self.patch(loop, "collate", collate)
        self.patch(loop, "make_optimizer", make_optimizer)
        self.patch(loop, "bucket_batches", once("batch plan (per epoch)"))
        self.patch(loop, "_end_epoch", end_epoch)
        self.patch(loop, "distill_loss", timed("loss"))
        self.patch(loop, "teacher_rows", timed("loss"))
        if self.teacher:
            self.patch(loop, "the_teacher", stand_in)
        for name in ("cross_entropy", "binary_cross_entropy_with_logits"):
            self.patch(F, name, timed("loss"))
        for name in ("embedding", "embedding_bag"):
            self.patch(F, name, gather)
        self.patch(torch.Tensor, "backward", timed("backward"))
        self.patch(torch.nn.utils, "clip_grad_norm_", timed("gradient clip"))
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, old in reversed(self.saved):
            setattr(owner, name, old)


# --- the run ------------------------------------------------------------------------------------
def run_config(preset: str | None, sets: Sequence[str]) -> tuple[Any, bool]:
    """The RunConfig the CLI would make of ``--preset`` and ``--set`` (one model of it), and
    whether that model is taught (the preset trains a teacher)."""
    from metaprep.errors import ConfigError
    from metaprep.learn.config import OPTIONS, RunConfig, preset_values
    from metaprep.learn.options import parse_value

    given = preset_values(preset)
    for item in sets:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in OPTIONS:
            raise ConfigError(f"--set {item!r}: not KEY=VALUE with a training option as KEY",
                              hint=f"the options are: {', '.join(sorted(OPTIONS))}")
        try:
            given[key] = parse_value(OPTIONS[key], text)
        except ValueError as exc:
            raise ConfigError(f"--set {key}: {exc}") from None
    taught = bool(given.pop("teacher_members", 0))
    given.pop("members", None)  # an ensemble's members are each this model
    sources = list(given.pop("sources", []))
    cfg = RunConfig(sources=sources, source_dims=[0] * len(sources), **given)
    return cfg, taught


def profile(cfg: Any, *, store: Path, train: Path, dev: Path, steps: int, warmup: int,
            taught: bool) -> dict[str, Any]:
    """Run the loop for ``warmup`` + ``steps`` steps; the per-step part times and a summary."""
    from dataclasses import replace

    from metaprep.learn.train import train as train_run

    clock = Clock(warmup + steps)
    if taught:
        cfg = replace(cfg, teacher=str(store.parent / "stand-in-teacher"))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Instrumented(clock, cfg.sources, taught):
        try:
            train_run(cfg, store=store, train_data=train, dev=dev, out=Path(tmp) / "run",
                      progress=False)
        except _Enough:
            pass
    if len(clock.steps) < warmup + steps:
        raise RuntimeError(f"the run ended after {len(clock.steps)} timed steps, not "
                           f"{warmup + steps}: its epochs were fewer (ask fewer --steps), or "
                           "its optimizer step was not found (the loop changed)")
    measured, measured_cpu = clock.steps[warmup:], clock.steps_cpu[warmup:]
    shapes = clock.shapes[warmup : warmup + steps]
    found = sorted({k for s in measured for k in s} - {"total"})
    gathers = [k for k in found if k.startswith("gather: ")]
    opt = [k for k in found if k.startswith("optimizer")]
    names = ["batching + padding", *gathers, *[k for k in ORDER[1:] if k in found], *opt]
    names += [k for k in found if k not in names]
    rows = []
    totals = [s["total"] for s in measured]
    def rest(steps: list[dict[str, float]]) -> list[float]:
        return [s["total"] - sum(v for k, v in s.items() if k != "total") for s in steps]

    mean_total = statistics.fmean(totals)
    for name in [*names, OTHER]:
        vals = rest(measured) if name == OTHER else [s.get(name, 0.0) for s in measured]
        cpu = rest(measured_cpu) if name == OTHER else [s.get(name, 0.0) for s in measured_cpu]
        rows.append({"part": name, "median_ms": 1000 * statistics.median(vals),
                     "mean_ms": 1000 * statistics.fmean(vals),
                     "share": statistics.fmean(vals) / mean_total,
                     "cpu_median_ms": 1000 * statistics.median(cpu)})
    batch = statistics.fmean(b for b, _, _ in shapes) if shapes else 0.0
    return {
        "steps": steps, "warmup": warmup, "rows": rows,
        "step_ms_median": 1000 * statistics.median(totals), "step_ms_mean": 1000 * mean_total,
        "step_cpu_ms_median": 1000 * statistics.median(s["total"] for s in measured_cpu),
        "texts_per_s": batch / statistics.median(totals) if batch else None,
        "batch": {"texts": batch,
                  "padded_tokens": statistics.fmean(b * t for b, t, _ in shapes) if shapes else 0,
                  "real_tokens": statistics.fmean(r for _, _, r in shapes) if shapes else 0},
        "not_found": [k for k in ORDER if k not in found and k not in _OPTIONAL],
        "once_ms": {k: 1000 * v for k, v in clock.once.items()},
        "setup_s": (clock.began or start) - start, "wall_s": time.perf_counter() - start,
        "per_step": [{k: round(1000 * v, 4) for k, v in s.items()} for s in measured],
    }


# parts that only some configs have (no learned source, no bigrams, no teacher ...)
_OPTIONAL = {"learned words", "learned bigram buckets", "gradient clip"}


def report(result: dict[str, Any]) -> str:
    b = result["batch"]
    pad = 1 - b["real_tokens"] / b["padded_tokens"] if b["padded_tokens"] else 0.0
    lines = [
        f"## Step profile: {result['data']}, {result['config_label']}",
        "",
        f"Measured {result['date']} at commit `{result['commit']}`; torch "
        f"{result['torch']}, {result['threads']} thread(s); {result['steps']} steps after "
        f"{result['warmup']} warm-up steps.",
        f"Machine: {result['machine']}.",
        "",
        f"Step: median {result['step_ms_median']:.2f} ms, mean {result['step_ms_mean']:.2f} ms; "
        f"{b['texts']:.0f} texts a batch, {b['padded_tokens'] / max(1, b['texts']):.1f} "
        f"tokens a text padded, {b['real_tokens'] / max(1, b['texts']):.1f} real "
        f"({100 * pad:.0f} % padding); "
        + (f"{result['texts_per_s']:,.0f} texts/s at the median step." if result["texts_per_s"]
           else ""),
        "",
        "| part | median ms | mean ms | share of the mean step | median CPU ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['part']} | {r['median_ms']:.3f} | {r['mean_ms']:.3f} | "
                     f"{100 * r['share']:.1f} % | {r['cpu_median_ms']:.3f} |")
    lines.append(f"| **step** | {result['step_ms_median']:.3f} | "
                 f"{result['step_ms_mean']:.3f} | 100 % | {result['step_cpu_ms_median']:.3f} |")
    lines.append("")
    lines.append(f"- setup before the first step (reading the data, the tables, the model): "
                 f"{result['setup_s']:.1f} s.")
    lines.append("- CPU ms: this thread's CPU time (with one torch thread, the work itself, "
                 "whatever else runs on the machine); wall ms waits for the cores too.")
    for k, v in result["once_ms"].items():
        lines.append(f"- {k}: {v:.1f} ms, not in any step.")
    if result["not_found"]:
        lines.append(f"- not found (the code changed? their time is in 'other'): "
                     f"{', '.join(result['not_found'])}.")
    if result["taught"]:
        lines.append("- the config trains a teacher: this is its taught model's step, with a "
                     "random stand-in for the teacher's probabilities.")
    lines.append(f"- config: `{json.dumps(result['config_given'])}`.")
    return "\n".join(lines) + "\n"


def task_files(task: str, data_dir: Path, fresh: bool) -> tuple[Path, dict[str, str]]:
    """The task's split files and the GloVe + MiniLM store bench_frontier.py uses for it."""
    import bench_frontier
    import bench_methods

    manifest, files = bench_frontier.task_data(task, data_dir, quick=False)
    work = bench_frontier.WORK / task
    store, _, seconds = bench_methods.align_store({**manifest, "task": {"files": files}}, work,
                                                  fresh=fresh)
    sys.stderr.write(f"{task}: store {store} ({seconds:.0f} s to align)\n")
    return store, files


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="debian", help="a realdata.py task (fortunes, debian, "
                    "debian-long); ignored with --store")
    ap.add_argument("--data", default=str(HERE / "data" / "real"),
                    help="realdata.py's output directory")
    ap.add_argument("--store", help="an aligned store (with --train and --dev)")
    ap.add_argument("--train")
    ap.add_argument("--dev")
    ap.add_argument("--preset", default=None, help="fast | accurate")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a training option, as `metaprep train --set` reads it (repeatable)")
    ap.add_argument("--steps", type=int, default=50, help="steps measured")
    ap.add_argument("--warmup", type=int, default=5, help="steps run first, not measured")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--output", default=str(HERE / "results" / "step-profile"),
                    help="writes OUTPUT.md and OUTPUT.json")
    ap.add_argument("--fresh", action="store_true", help="align the task's store again")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--steps and --threads must be at least 1, --warmup at least 0")
    if args.store and not (args.train and args.dev):
        ap.error("--store needs --train and --dev")
    import bench_frontier
    import torch

    from metaprep.errors import MetaprepError

    torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.UTC)
    try:
        cfg, taught = run_config(args.preset, args.set)
        if args.store:
            store, files = Path(args.store), {"train": args.train, "dev": args.dev}
            data = Path(args.train).name
        else:
            store, files = task_files(args.task, Path(args.data), args.fresh)
            data = args.task
        result = profile(cfg, store=store, train=Path(files["train"]), dev=Path(files["dev"]),
                         steps=args.steps, warmup=args.warmup, taught=taught)
    except (MetaprepError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    label = " ".join([*(["--preset " + args.preset] if args.preset else []),
                      *(f"--set {s}" for s in args.set)]) or "the defaults"
    result.update(data=data, config_label=label, taught=taught, threads=args.threads,
                  date=started.isoformat(timespec="seconds"), commit=bench_frontier.commit(),
                  machine=bench_frontier.machine_line(), torch=torch.__version__,
                  config_given={"preset": args.preset, "set": args.set},
                  config=cfg.to_dict())
    text = report(result)
    print(text)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.md").write_text(text, encoding="utf-8")
    Path(f"{out}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
