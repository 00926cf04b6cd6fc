"""The production frontier: accuracy against end-to-end serving speed, metaprep vs the usual fast
text classifiers, on the real tasks, in one run.

    python benchmarks/bench_frontier.py [--tasks fortunes,debian,debian-long,pypi-long]
        [--seeds 0,1,2]
    python benchmarks/bench_frontier.py --quick          # smoke test: 1 seed, 1 epoch, subsets

For each task (``benchmarks/realdata.py``: fortunes topics, Debian package sections from the
short descriptions, ``debian-long``: from the long descriptions, 100+ words each, and
``pypi-long``: PyPI project descriptions labelled by trove topic, median 351 words) and seed:

* metaprep, through its command line as a user runs it: ``metaprep align`` GloVe 6B 50d + the
  MiniLM input table over the task's words (as ``pipelines/glove-minilm.toml``), ``metaprep
  train`` (``sum``/``dme`` + pool, ``concat`` + BiLSTM-128, ``sum`` + pool with the learned
  source, and the ``--preset fast`` / ``--preset accurate`` recipes, the fast one also with the
  cnn encoder), ``metaprep export-onnx``, then served with
  ``metaprep.runtime.Model.predict_proba`` (numpy + onnxruntime);
* fastText supervised (``fasttext-numpy2``), word bigrams, dim 50, without and with GloVe 6B 50d
  as pretrained vectors (the whole 400k-word table, written once as a ``.vec``); the epoch count
  is picked on dev among a few;
* TF-IDF word 1-2-grams + logistic regression or a linear SVM (scikit-learn), the better on dev;
* model2vec distilled from the local all-MiniLM-L6-v2 (offline), with a scikit-learn logistic
  regression on its sentence vectors. model2vec's distillation needs transformers, which pulls a
  newer click than metaprep's environment has, so it runs in its own virtual environment (see
  ``--model2vec-python``; benchmarks/README.md has the setup); left out, with the reason, if that
  interpreter cannot import model2vec.

Accuracy and macro-F1 are computed here from each served model's test predictions, mean and
sample standard deviation over the seeds. Speed is end to end, texts in and labels out (each
system's own tokenization included), with ``--threads`` threads for everyone: metaprep's runtime
runs that many batches at once (one onnxruntime thread each); the baselines get BLAS/OpenMP pools
of that size and are also timed split over that many Python threads, keeping the faster way
(fastText's Python ``predict`` holds the GIL, so a second thread does not help it). For each of
``--batch-sizes`` the median over the timed passes over the test set (at least 5 and 2 s in
all), taken in 5 rounds in which every system, way and batch size is timed in turn, so that a
slow spell of the machine does not fall on one system only; the best batch size is reported.
Speed and size are
measured on the seed-0 model, after all training has finished (nothing of ours runs alongside).
Model size is the bytes on disk a server needs (model directory, ``.bin``, pickle); for metaprep
also the run directory's size after training (run dir, seed 0; the fast preset's includes the
teacher ensemble it trains).

Training cost, for every system: ``train (s)``, the wall time of its training, mean over the
seeds (what it counts, per system, is listed under each table: metaprep's is the whole `metaprep
train` command, the baselines' include their search over epochs or classifiers), and ``train
texts/s``: the task's training texts divided by that time, the training data a system gets
through per second of wall time, whatever its epochs (fastText's and metaprep's epochs and
each fastText candidate's seconds are in the JSON). `metaprep align`'s time is given apart.

``--systems`` picks a subset; with ``--keep-earlier`` the rows of the systems not rerun are carried
from the results already written, each marked with its own date and commit (its accuracy holds,
its speed is from that other run), so an expensive baseline need not be rerun for a new system.

Results go to ``benchmarks/results/frontier-<task>.{json,md}`` and ``frontier.png`` (accuracy vs
log sentences/s), with the date, commit and a machine line (cores, CPU, load average). On a
shared machine the speeds are noisy: rerun when it is quiet. Finished metaprep runs and exports
are reused (``--fresh`` redoes them); work files are in ``benchmarks/data/frontier/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import pickle
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WORK = HERE / "data" / "frontier"
RESULTS = HERE / "results"
M2V_VENV_PYTHON = WORK.parent / "m2v-venv" / "bin" / "python"

METAPREP_SYSTEMS: dict[str, list[str]] = {
    "metaprep sum+pool": ["--method", "sum", "--encoder", "pool"],
    "metaprep dme+pool": ["--method", "dme", "--encoder", "pool"],
    "metaprep concat+bilstm128": ["--method", "concat", "--encoder", "bilstm", "--set",
                                  "hidden=128"],
    # the learned source (a table over the train split's words, plus hashed word bigrams)
    "metaprep sum+pool+learned": ["--method", "sum", "--encoder", "pool", "--set", "learned_dim=64",
                                  "--set", "learned_lr_scale=30", "--set", "learned_dropout=0.5"],
    # the presets, as a user asks for them (their lr is the benchmark's too)
    "metaprep fast": ["--preset", "fast"],
    "metaprep accurate": ["--preset", "accurate"],
    # the fast preset's front end with the cnn encoder (benchmarks/results/encoders.md): one
    # model, untaught; `accurate` was this recipe before it became an ensemble of three `fast`
    # models
    "metaprep fast+cnn": ["--preset", "fast", "--encoder", "cnn", "--teacher-members", "0"],
}
SYSTEMS = (*METAPREP_SYSTEMS, "fasttext", "fasttext+glove", "tfidf+linear", "model2vec+logreg")
TASKS = ("fortunes", "debian", "debian-long", "pypi-long")
# metaprep epochs per task (early stopping on dev keeps the best epoch). One epoch of concat +
# BiLSTM-128 on debian's 47.6k training texts took 29 s on one thread (ad-hoc, under load);
# debian-long has 3.2k training texts (as fortunes: few texts, more epochs), ~146 words each
EPOCHS = {"fortunes": 15, "debian": 6, "debian-long": 15, "pypi-long": 15}
LR = 1e-3  # as bench_methods.py; metaprep's default 4e-4 is meant for much larger data
FASTTEXT_EPOCHS = (5, 20, 50)  # picked on dev
QUICK_SIZES = {"train": 1500, "dev": 300, "test": 300}
M2V_GRID = (1.0, 10.0)  # logistic regression C on model2vec vectors, picked on dev


def _set_thread_env(threads: int) -> dict[str, str]:
    env = {name: str(threads) for name in (
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS")}
    env["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    os.environ.update(env)
    return env


# --- scoring and timing (pure) ---------------------------------------------------------------


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    if len(gold) != len(pred) or not gold:
        raise ValueError(f"{len(gold)} gold labels, {len(pred)} predictions")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Unweighted mean F1 over the labels found in gold or predictions (scikit-learn's
    ``f1_score(average="macro")``; a label with no true or predicted example scores 0)."""
    labels = sorted(set(gold) | set(pred))
    f1s = []
    for lab in labels:
        tp = sum(g == lab and p == lab for g, p in zip(gold, pred, strict=True))
        fp = sum(g != lab and p == lab for g, p in zip(gold, pred, strict=True))
        fn = sum(g == lab and p != lab for g, p in zip(gold, pred, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def time_passes(run: Callable[[], Any], *, min_passes: int = 5, min_time: float = 2.0,
                max_passes: int = 50) -> list[float]:
    """Seconds per call of ``run`` (one pass over the test set), after one warm-up call: at
    least ``min_passes`` calls and ``min_time`` seconds, at most ``max_passes`` calls."""
    run()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_passes and (len(times) < min_passes
                                       or time.perf_counter() - start < min_time):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return times


def best_speed(n_texts: int, predict_in_batches: Callable[[int], Callable[[], Any]],
               batch_sizes: Sequence[int], **timing: Any) -> dict[str, Any]:
    """Sentences/s (n / median pass time) per batch size, and the best of them."""
    per_batch: dict[str, float] = {}
    for b in batch_sizes:
        per_batch[str(b)] = n_texts / statistics.median(time_passes(predict_in_batches(b),
                                                                      **timing))
    best = max(per_batch, key=lambda k: per_batch[k])
    return {"sentences_per_s": per_batch[best], "batch_size": int(best), "by_batch": per_batch}


ROUNDS = 5  # timing rounds, every way of every system timed once in each


def interleaved_rates(n_texts: int, calls: Mapping[Any, Callable[[], Any]], *, rounds: int,
                      min_passes: int = 5, min_time: float = 2.0) -> dict[Any, float]:
    """Sentences/s (n / median pass time) of each call, timed in ``rounds`` rounds that take
    the calls in turn (forward, then backward, so none is always first): each gets
    ``min_time`` seconds and ``min_passes`` passes in all, spread over the rounds."""
    times: dict[Any, list[float]] = {k: [] for k in calls}
    keys = list(calls)
    per_round = {"min_passes": max(1, -(-min_passes // rounds)),
                 "min_time": min_time / rounds}
    for r in range(rounds):
        for k in keys if r % 2 == 0 else keys[::-1]:
            times[k] += time_passes(calls[k], **per_round)
    return {k: n_texts / statistics.median(v) for k, v in times.items()}


def chunks(texts: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for s in range(0, len(texts), size):
        yield texts[s : s + size]


_TOKEN = re.compile(r"\w+|[^\w\s]")


def simple_tokens(text: str) -> str:
    """Lower-cased words and punctuation marks, space-separated (fastText splits on spaces)."""
    return " ".join(_TOKEN.findall(text.lower()))


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def align_seconds(work: Path, measured: float) -> float:
    """The seconds ``metaprep align`` took to build the task's store: ``measured`` when it was
    built now (kept beside it), else the figure kept when it was built (0 if none was)."""
    kept = work / "store.seconds"
    if measured > 0:
        kept.write_text(f"{measured:.1f}\n", encoding="utf-8")
        return measured
    with contextlib.suppress(OSError, ValueError):
        return float(kept.read_text(encoding="utf-8"))
    return 0.0


def epochs_run(run: Path) -> int | None:
    """Epochs the models of a metaprep run trained, added up: its own metrics.json, an
    ensemble's members', a taught run's teacher's (an ensemble's own metrics.json is skipped:
    it sums none)."""
    total = 0
    for path in sorted(run.rglob("metrics.json")):
        if (path.parent / "ensemble.json").is_file():
            continue
        with contextlib.suppress(OSError, json.JSONDecodeError, TypeError):
            total += len(json.loads(path.read_text(encoding="utf-8")).get("epochs") or [])
    return total or None


def read_task(path: str | Path) -> tuple[list[str], list[str]]:
    import realdata

    rows = realdata.read_tsv(path)
    return [t for t, _ in rows], [lab for _, lab in rows]


# --- results ---------------------------------------------------------------------------------


@dataclass
class SystemResult:
    system: str
    runs: list[dict[str, Any]] = field(default_factory=list)  # per seed: accuracy, macro_f1, ...
    speed: dict[str, Any] | None = None  # seed 0 model: sentences_per_s, batch_size, by_batch
    size_bytes: int | None = None
    run_bytes: int | None = None  # metaprep: the seed-0 run directory after training
    note: str = ""
    skipped: str = ""

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {"system": self.system, "seeds": [r["seed"] for r in self.runs],
                               "note": self.note, "skipped": self.skipped}
        if self.runs:
            acc = mean_sd([100 * r["accuracy"] for r in self.runs])
            f1 = mean_sd([100 * r["macro_f1"] for r in self.runs])
            out.update(accuracy_mean=round(acc[0], 2), accuracy_sd=round(acc[1], 2),
                       macro_f1_mean=round(f1[0], 2), macro_f1_sd=round(f1[1], 2),
                       train_s_mean=round(statistics.fmean(r["train_s"] for r in self.runs), 1))
            rates = [r["train_texts"] / r["train_s"] for r in self.runs
                     if r.get("train_texts") and r["train_s"] > 0]
            if rates:  # the training texts per second of training wall time (module docstring)
                out["train_texts_per_s"] = round(statistics.fmean(rates), 1)
        if self.speed:
            out.update(sentences_per_s=round(self.speed["sentences_per_s"]),
                       batch_size=self.speed["batch_size"])
            if self.speed.get("python_threads", 1) > 1:
                out["python_threads"] = self.speed["python_threads"]
        if self.size_bytes is not None:
            out["size_mb"] = round(self.size_bytes / 1e6, 2)
        if self.run_bytes is not None:
            out["run_dir_mb"] = round(self.run_bytes / 1e6, 2)
        return out


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| system | accuracy (%) | macro-F1 (%) | sentences/s (batch) | size (MB) | "
             "run dir (MB) | train (s) | train texts/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['system']} | skipped: {r['skipped']} | | | | | | |")
            continue
        if "accuracy_mean" not in r:
            continue
        threads = f", {r['python_threads']} Python threads" if "python_threads" in r else ""
        speed = (f"{r['sentences_per_s']:,} ({r['batch_size']}{threads})"
                 if "sentences_per_s" in r else "-")
        size = f"{r['size_mb']:.1f}" if "size_mb" in r else "-"
        run_dir = f"{r['run_dir_mb']:.1f}" if "run_dir_mb" in r else "-"
        rate = f"{r['train_texts_per_s']:,.0f}" if "train_texts_per_s" in r else "-"
        lines.append(f"| {r['system']} | {r['accuracy_mean']:.1f} +- {r['accuracy_sd']:.1f} | "
                     f"{r['macro_f1_mean']:.1f} +- {r['macro_f1_sd']:.1f} | {speed} | {size} | "
                     f"{run_dir} | {r['train_s_mean']:.0f} | {rate} |")
    return "\n".join(lines) + "\n"


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.machine()}, nproc {os.cpu_count()}, {cpu}, load average {load}"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=HERE).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, cwd=HERE).stdout
        return head + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- the task data ---------------------------------------------------------------------------


def task_data(task: str, data_dir: Path, quick: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The realdata manifest and the task's split files (built if missing; in --quick mode,
    the first rows of each split, which are already shuffled)."""
    import realdata

    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        pass
    entry = manifest.get("tasks", {}).get(task)
    if not entry or not all(Path(p).is_file() for p in entry["files"].values()):
        manifest = realdata.prepare(data_dir, tasks=[task])
        entry = manifest["tasks"][task]
    files = dict(entry["files"])
    if quick:
        sub = WORK / "quick" / "data"
        known: set[str] = set()
        for split, n in QUICK_SIZES.items():  # train first: dev/test keep its labels only
            rows = realdata.read_tsv(files[split])
            rows = [r for r in rows if split == "train" or r[1] in known][:n]
            known |= {lab for _, lab in rows}
            out = sub / f"{task}.{split}.tsv"
            realdata.write_tsv(out, rows)
            files[split] = str(out)
    return manifest, files


# --- metaprep --------------------------------------------------------------------------------


def _sha(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def epoch_args(system: str, epochs: int, own: bool) -> list[str]:
    """``--epochs`` for a metaprep system: the task's count, except that a preset which sets its
    own count keeps it when ``own`` (no --epochs or --quick given), as a user runs it."""
    from metaprep.learn.config import PRESETS

    flags = METAPREP_SYSTEMS[system]
    preset = flags[flags.index("--preset") + 1] if "--preset" in flags else None
    if own and preset is not None and "epochs" in PRESETS[preset]:
        return []
    return ["--epochs", str(epochs)]


def shared_teachers(systems: Sequence[str], seeds: Sequence[int], work: Path) -> dict[int, Path]:
    """The `fast` preset trains its own teacher, an ensemble of `teacher_members` models of its
    config: exactly the `accurate` preset's ensemble of the same seed when that is
    `members` = `teacher_members` of the same values (bit-identical members:
    tests/learn/test_teacher.py). When both presets are benchmarked, the fast runs are given
    the accurate runs as their teachers instead of training the same three models again."""
    from metaprep.learn.config import PRESETS

    fast, accurate = dict(PRESETS["fast"]), dict(PRESETS["accurate"])
    k = fast.pop("teacher_members", 0)
    for key in ("teacher_weight", "teacher_temperature"):  # the student's, not its teacher's
        fast.pop(key, None)
        accurate.pop(key, None)
    same = accurate.pop("members", 1) == k and accurate.pop("teacher_members", 0) == 0
    if not (k and same and fast == accurate and {"metaprep fast", "metaprep accurate"}
            <= set(systems)):
        return {}
    return {seed: work / "runs" / f"accurate-seed{seed}" for seed in seeds}


def metaprep_train_export(system: str, seed: int, store: Path, store_key: str,
                          files: Mapping[str, str], work: Path, epochs: int,
                          fresh: bool, own_epochs: bool = False,
                          extra: Sequence[str] = ()) -> dict[str, Any]:
    """Train and export one metaprep model with the command line; reuse a finished one with the
    same settings. Returns the record (run and model paths, seconds, export notes)."""
    import bench_methods

    name = f"{system.split()[1].replace('+', '-')}-seed{seed}"
    run, model = work / "runs" / name, work / "models" / name
    args = ["train", "--store", str(store), "--train", files["train"], "--dev", files["dev"],
            "--test", files["test"], *METAPREP_SYSTEMS[system], *extra,
            *epoch_args(system, epochs, own_epochs), "--lr", str(LR), "--seed", str(seed),
            "--threads", "1", "--quiet", "-o", str(run)]
    # a preset's values are part of the settings: a changed preset is retrained, not reused
    from metaprep.learn.config import PRESETS

    flags = METAPREP_SYSTEMS[system]
    preset = PRESETS[flags[flags.index("--preset") + 1]] if "--preset" in flags else None
    wanted = {"args": args, "store_key": store_key, "preset": preset}
    record_path = work / "records" / f"{name}.json"
    if not fresh and record_path.is_file() and (model / "manifest.json").is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if {k: record.get(k) for k in wanted} == wanted:
            sys.stderr.write(f"reusing {model}\n")
            return {**record, "reused": True}
    shutil.rmtree(run, ignore_errors=True)  # a run of other settings: train refuses to mix
    record_path.unlink(missing_ok=True)
    train_s = bench_methods.run_metaprep(args, log=work / "logs" / f"train-{name}.log",
                                         threads=1)
    export = ["export-onnx", str(run), "-o", str(model), "--force", "-q"]
    note = ""
    try:
        bench_methods.run_metaprep(export, log=work / "logs" / f"export-{name}.log")
    except bench_methods.BenchError as exc:
        # large logits can miss the default 1e-5 parity gate (a known export issue)
        if "parity" not in str(exc).lower() and "tolerance" not in str(exc).lower():
            raise
        bench_methods.run_metaprep([*export, "--tolerance", "1e-4"],
                                   log=work / "logs" / f"export-{name}.log")
        note = "exported with --tolerance 1e-4 (failed the 1e-5 parity gate)"
    record = {**wanted, "run": str(run), "model": str(model), "train_s": round(train_s, 1),
              "export_note": note, "trained": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


class MetaprepPredictor:
    def __init__(self, model_dir: str | Path, threads: int) -> None:
        self.model_dir, self.threads = Path(model_dir), threads
        self._models: dict[int, Any] = {}

    def _model(self, batch: int) -> Any:
        from metaprep.runtime import Model

        if batch not in self._models:
            self._models[batch] = Model(self.model_dir, threads=self.threads, batch_size=batch)
        return self._models[batch]

    def predict(self, texts: Sequence[str], batch: int = 256) -> list[str]:
        m = self._model(batch)
        probs = m.predict_proba(list(texts))
        return [m.labels[i] for i in probs.argmax(axis=1)]


class ThreadedPredictor:
    """A baseline's predict split over ``threads`` Python threads, one contiguous part each."""

    def __init__(self, pred: Any, threads: int) -> None:
        self.pred, self.threads = pred, threads
        self.pool = ThreadPoolExecutor(threads)

    def predict(self, texts: Sequence[str], batch: int = 256) -> list[str]:
        step = -(-len(texts) // self.threads)
        parts = [texts[s : s + step] for s in range(0, len(texts), step)]
        return [y for got in self.pool.map(lambda p: self.pred.predict(p, batch), parts)
                for y in got]


# --- fastText --------------------------------------------------------------------------------


def glove_vec(manifest: Mapping[str, Any], path: Path) -> Path:
    """The whole GloVe 6B 50d table as a fastText/word2vec text file (written once)."""
    if path.is_file():
        return path
    import numpy as np

    matrix = np.load(manifest["glove"]["matrix"], mmap_mode="r")
    words = Path(manifest["glove"]["vocab"]).read_text(encoding="utf-8").split("\n")[:-1]
    if len(words) != matrix.shape[0]:
        raise RuntimeError(f"{len(words)} words for {matrix.shape[0]} GloVe rows")
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{matrix.shape[0]} {matrix.shape[1]}\n")
        for start in range(0, matrix.shape[0], 50_000):
            block = np.asarray(matrix[start : start + 50_000], dtype=np.float32)
            for word, vec in zip(words[start : start + 50_000], block, strict=True):
                f.write(word + " " + " ".join(f"{x:.5f}" for x in vec) + "\n")
    os.replace(tmp, path)
    return path


def _fasttext_file(texts: Sequence[str], labels: Sequence[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for text, label in zip(texts, labels, strict=True):
            f.write(f"__label__{label} {simple_tokens(text)}\n")
    return path


class FastTextPredictor:
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, texts: Sequence[str], batch: int = 256) -> list[str]:
        out: list[str] = []
        for part in chunks(texts, batch):
            labels, _ = self.model.predict([simple_tokens(t) for t in part])
            out += [lab[0][len("__label__"):] for lab in labels]
        return out


def fit_fasttext(data: Mapping[str, tuple[list[str], list[str]]], seed: int, threads: int,
                 work: Path, vec: Path | None, epochs: Sequence[int]) -> tuple[Any, dict[str, Any]]:
    import fasttext

    train = _fasttext_file(*data["train"], work / "fasttext.train.txt")
    best: tuple[float, Any, int] | None = None
    seconds: dict[str, float] = {}  # each candidate's training alone
    for ep in epochs:
        kw: dict[str, Any] = {"pretrainedVectors": str(vec)} if vec else {}
        t = time.perf_counter()
        model = fasttext.train_supervised(input=str(train), epoch=ep, lr=0.5, wordNgrams=2,
                                          dim=50, thread=threads, verbose=0, seed=seed, **kw)
        seconds[str(ep)] = round(time.perf_counter() - t, 2)
        dev = accuracy(data["dev"][1], FastTextPredictor(model).predict(data["dev"][0]))
        if best is None or dev > best[0]:
            best = (dev, model, ep)
    assert best is not None
    return FastTextPredictor(best[1]), {"dev_accuracy": best[0], "epochs": best[2],
                                        "train_s_by_epochs": seconds}


# --- TF-IDF + linear -------------------------------------------------------------------------


class SklearnPredictor:
    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict(self, texts: Sequence[str], batch: int = 256) -> list[str]:
        out: list[str] = []
        for part in chunks(texts, batch):
            out += [str(x) for x in self.pipeline.predict(list(part))]
        return out


def fit_tfidf(data: Mapping[str, tuple[list[str], list[str]]],
              seed: int) -> tuple[Any, dict[str, Any]]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    candidates = {
        "logreg C=10": LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
        "linearsvc C=0.5": LinearSVC(C=0.5, random_state=seed),
    }
    best: tuple[float, Any, str] | None = None
    for name, clf in candidates.items():
        pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                             token_pattern=r"(?u)\b\w+\b"), clf)
        pipe.fit(*data["train"])
        dev = accuracy(data["dev"][1], SklearnPredictor(pipe).predict(data["dev"][0]))
        if best is None or dev > best[0]:
            best = (dev, pipe, name)
    assert best is not None
    return SklearnPredictor(best[1]), {"dev_accuracy": best[0], "classifier": best[2]}


# --- model2vec (runs in its own interpreter) -------------------------------------------------


def model2vec_python(explicit: str | None) -> tuple[str | None, str]:
    """An interpreter that imports model2vec's distillation, or (None, why not)."""
    candidates = [explicit] if explicit else [sys.executable, str(M2V_VENV_PYTHON)]
    for py in candidates:
        if not py or not Path(py).exists():
            continue
        probe = subprocess.run([py, "-c", "import model2vec.distill, sklearn"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return py, ""
    return None, ("model2vec[distill] not importable (see benchmarks/README.md: a venv at "
                  f"{M2V_VENV_PYTHON.parent.parent})")


def model2vec_worker(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Runs inside the model2vec interpreter: distil (once), fit, score, time; JSON out."""
    _set_thread_env(int(spec["threads"]))
    import numpy as np
    from model2vec import StaticModel
    from sklearn.linear_model import LogisticRegression

    distilled = Path(spec["distilled"])
    if not (distilled / "model.safetensors").is_file():
        from model2vec.distill import distill

        t = time.perf_counter()
        m = distill(model_name=spec["teacher"], pca_dims=256)
        m.save_pretrained(str(distilled))
        sys.stderr.write(f"distilled {spec['teacher']} in {time.perf_counter() - t:.0f} s\n")
    model = StaticModel.from_pretrained(str(distilled))
    data = {s: read_task(p) for s, p in spec["files"].items()}
    # lbfgs ignores the seed: the fit of the first seed is kept and reused for the others
    key = hashlib.sha256(json.dumps([{k: _sha(p) for k, p in sorted(spec["files"].items())},
                                     str(distilled), M2V_GRID]).encode()).hexdigest()[:16]
    cache = Path(spec["clf_path"]).with_suffix(".cache.pkl")
    cached: dict[str, Any] | None = None
    if cache.is_file():
        cached = pickle.loads(cache.read_bytes())
        if cached is None or cached.get("key") != key:
            cached = None
    if cached is None:
        t = time.perf_counter()
        emb = {s: model.encode(data[s][0]) for s in ("train", "dev")}
        best: tuple[float, Any, float] | None = None
        for c in M2V_GRID:
            clf = LogisticRegression(C=c, max_iter=1000)
            clf.fit(emb["train"], data["train"][1])
            dev = float(np.mean(clf.predict(emb["dev"]) == np.asarray(data["dev"][1])))
            if best is None or dev > best[0]:
                best = (dev, clf, c)
        assert best is not None
        cached = {"key": key, "clf": best[1], "dev": best[0], "C": best[2],
                  "train_s": time.perf_counter() - t}
        cache.write_bytes(pickle.dumps(cached))
    clf = cached["clf"]
    best = (cached["dev"], clf, cached["C"])
    train_s = cached["train_s"]

    def predict(texts: Sequence[str], batch: int) -> list[str]:
        out: list[str] = []
        for part in chunks(texts, batch):
            out += [str(x) for x in clf.predict(model.encode(list(part), batch_size=batch))]
        return out

    test = data["test"][0]
    result: dict[str, Any] = {"pred": predict(test, 256), "train_s": train_s,
                              "dev_accuracy": best[0], "C": best[2]}
    if spec["time"]:
        result["speed"] = best_speed(len(test), lambda b: lambda: predict(test, b),
                                     spec["batch_sizes"], **spec["timing"])
        clf_path = Path(spec["clf_path"])
        clf_path.write_bytes(pickle.dumps(clf))
        result["size_bytes"] = dir_bytes(distilled) + clf_path.stat().st_size
    return result


def run_model2vec(py: str, files: Mapping[str, str], seed: int, threads: int, work: Path,
                  batch_sizes: Sequence[int], timing: Mapping[str, Any],
                  time_it: bool) -> dict[str, Any]:
    import realdata

    teacher = Path(realdata.minilm_paths()[0]).parent
    spec = {"files": dict(files), "seed": seed, "threads": threads, "teacher": str(teacher),
            "distilled": str(WORK / "model2vec-minilm-256"), "batch_sizes": list(batch_sizes),
            "timing": dict(timing), "time": time_it, "clf_path": str(work / "m2v-logreg.pkl")}
    env = {**os.environ, **_set_thread_env(threads), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
               [str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([py, str(Path(__file__).resolve()), "--worker-model2vec",
                           json.dumps(spec)], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError("model2vec worker failed: " + proc.stderr.strip()[-800:])
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# --- one task --------------------------------------------------------------------------------


def run_task(task: str, args: argparse.Namespace) -> dict[str, Any]:
    import bench_methods
    import numpy as np  # noqa: F401 - imported after the thread variables are set
    from threadpoolctl import threadpool_limits

    started = dt.datetime.now(dt.UTC)
    machine_before = machine_line()
    work = WORK / ("quick" if args.quick else "") / task
    manifest, files = task_data(task, Path(args.data), args.quick)
    data = {s: read_task(p) for s, p in files.items()}
    test, gold = data["test"]
    epochs = args.epochs or (1 if args.quick else EPOCHS[task])
    timing = ({"min_passes": 2, "min_time": 0.2} if args.quick
              else {"min_passes": 5, "min_time": 2.0})
    results = {s: SystemResult(s) for s in args.systems}
    predictors: dict[str, Any] = {}  # seed-0 model of each system, timed at the end

    # 1. metaprep: align once, then train + export every (system, seed), --jobs at once
    mp = [s for s in args.systems if s in METAPREP_SYSTEMS]
    align_s = 0.0
    if mp:
        store, key, align_s = bench_methods.align_store(
            {**manifest, "task": {"files": files}}, work, fresh=args.fresh)
        align_s = align_seconds(work, align_s)
        sys.stderr.write(f"{task}: store {store} ({align_s:.0f} s)\n")
        jobs = sorted(((s, seed) for seed in args.seeds for s in mp),
                      key=lambda j: j[0] != "metaprep accurate")  # teachers first
        teachers = shared_teachers(mp, args.seeds, work)
        done = {seed: threading.Event() for seed in args.seeds}

        def one(job: tuple[str, int]) -> dict[str, Any]:
            system, seed = job
            extra: list[str] = []
            if system == "metaprep fast" and seed in teachers:
                done[seed].wait()  # its teacher is the accurate run of its seed
                extra = ["--teacher", str(teachers[seed])]
            try:
                return metaprep_train_export(system, seed, store, key, files, work, epochs,
                                             args.fresh, own_epochs=not (args.epochs or
                                                                         args.quick),
                                             extra=extra)
            finally:
                if system == "metaprep accurate":
                    done[seed].set()

        with ThreadPoolExecutor(args.jobs) as pool:
            records = list(pool.map(one, jobs))

        by_job = dict(zip(jobs, records, strict=True))
        for (system, seed), rec in by_job.items():
            pred = MetaprepPredictor(rec["model"], args.threads)
            got = pred.predict(test)
            train_s = rec["train_s"]
            run_bytes = dir_bytes(Path(rec["run"]))
            if system == "metaprep fast" and seed in teachers:  # it trains its teacher too
                train_s += by_job[("metaprep accurate", seed)]["train_s"]
                run_bytes += dir_bytes(teachers[seed])  # what RUN/teacher would hold
                results[system].note = ("taught by the accurate run of its seed (the ensemble "
                                        "the preset trains itself); train (s) and run dir "
                                        "count both")
            if rec.get("reused") and "reused" not in results[system].note:
                results[system].note = "; ".join(filter(None, [
                    results[system].note, f"trained by an earlier run of this script "
                    f"({str(rec.get('trained', '?'))[:10]}): its train (s) is from then"]))
            results[system].runs.append({"seed": seed, "accuracy": accuracy(gold, got),
                                         "macro_f1": macro_f1(gold, got),
                                         "train_s": round(train_s, 1), "run": rec["run"],
                                         "train_texts": len(data["train"][0]),
                                         "epochs_run": epochs_run(Path(rec["run"]))})
            if rec["export_note"] and rec["export_note"] not in results[system].note:
                results[system].note = "; ".join(filter(None, [results[system].note,
                                                               rec["export_note"]]))
            if seed == args.seeds[0]:
                predictors[system] = pred
                results[system].size_bytes = dir_bytes(Path(rec["model"]))
                results[system].run_bytes = run_bytes

    # 2. the in-process baselines
    ft_epochs = (5,) if args.quick else FASTTEXT_EPOCHS
    for system in [s for s in args.systems if s in ("fasttext", "fasttext+glove",
                                                    "tfidf+linear")]:
        try:
            if system.startswith("fasttext"):
                import fasttext  # noqa: F401
            else:
                import sklearn  # noqa: F401
        except ImportError as exc:
            results[system].skipped = f"{exc.name} not installed"
            continue
        vec = glove_vec(manifest, WORK / "glove6b50d.vec") if system == "fasttext+glove" else None
        for seed in args.seeds:
            t = time.perf_counter()
            with threadpool_limits(args.threads):
                if system.startswith("fasttext"):
                    pred, info = fit_fasttext(data, seed, args.threads, work, vec, ft_epochs)
                else:
                    pred, info = fit_tfidf(data, seed)
            train_s = time.perf_counter() - t
            got = pred.predict(test)
            results[system].runs.append({"seed": seed, "accuracy": accuracy(gold, got),
                                         "macro_f1": macro_f1(gold, got), "train_s": train_s,
                                         "train_texts": len(data["train"][0]), **info})
            if seed == args.seeds[0]:
                predictors[system] = pred
                path = work / f"{system.replace('+', '-')}.model"
                if system.startswith("fasttext"):
                    pred.model.save_model(str(path))
                else:
                    path.write_bytes(pickle.dumps(pred.pipeline))
                results[system].size_bytes = dir_bytes(path)
                path.unlink()  # fastText's .bin is 400+ MB (2M hash buckets x 50 dims)
        pick = tally(r.get("epochs", r.get("classifier")) for r in results[system].runs)
        results[system].note = ("picked on dev: " + pick) if pick else ""

    # 3. model2vec in its own interpreter (it times itself, after the others are done)
    m2v_py: str | None = None
    if "model2vec+logreg" in args.systems:
        m2v_py, why = model2vec_python(args.model2vec_python)
        if m2v_py is None:
            results["model2vec+logreg"].skipped = why

    # 4. speed of the seed-0 models, nothing else of ours running. The baselines are also tried
    # split over --threads Python threads (fastText's predict holds the GIL, scikit-learn's
    # releases it in parts): each keeps its faster way. Every (system, way, batch size) is
    # timed in each of ROUNDS rounds, in turn, so a slow spell of the machine falls on all of
    # them alike instead of on whichever system was being timed then.
    calls: dict[tuple[str, int, int], Callable[[], Any]] = {}
    for system, pred in predictors.items():
        ways = {1: pred} if system in METAPREP_SYSTEMS or args.threads == 1 else {
            1: pred, args.threads: ThreadedPredictor(pred, args.threads)}
        for n, p in ways.items():
            for b in args.batch_sizes:
                calls[(system, n, b)] = lambda p=p, b=b: p.predict(test, b)
    sys.stderr.write(f"{task}: timing {len(calls)} ways of {len(predictors)} systems\n")
    with threadpool_limits(args.threads):
        rates = interleaved_rates(len(test), calls, rounds=1 if args.quick else ROUNDS,
                                  **timing)
    for system in predictors:
        mine = {(n, b): r for (s, n, b), r in rates.items() if s == system}
        speeds = {n: {"sentences_per_s": max(r for (m, _), r in mine.items() if m == n),
                      "by_batch": {str(b): r for (m, b), r in mine.items() if m == n}}
                  for n in sorted({n for n, _ in mine})}
        for v in speeds.values():
            v["batch_size"] = int(max(v["by_batch"], key=lambda k: v["by_batch"][k]))
        best = max(speeds, key=lambda n: speeds[n]["sentences_per_s"])
        results[system].speed = {**speeds[best], "python_threads": best,
                                 "by_python_threads": {str(n): v["sentences_per_s"]
                                                       for n, v in speeds.items()}}
    if m2v_py is not None:
        res = results["model2vec+logreg"]
        for seed in args.seeds:
            out = run_model2vec(m2v_py, files, seed, args.threads, work, args.batch_sizes,
                                timing, time_it=seed == args.seeds[0])
            res.runs.append({"seed": seed, "accuracy": accuracy(gold, out["pred"]),
                             "macro_f1": macro_f1(gold, out["pred"]),
                             "train_s": out["train_s"], "dev_accuracy": out["dev_accuracy"],
                             "train_texts": len(data["train"][0]),
                             "C": out["C"]})
            if "speed" in out:
                res.speed, res.size_bytes = out["speed"], out["size_bytes"]
        res.note = "deterministic (seeds do not change it); picked on dev: C " + tally(
            r["C"] for r in res.runs)

    rows = [results[s].row() for s in args.systems]
    return {
        "task": task, "quick": args.quick, "date": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit(), "machine_before": machine_before, "machine_after": machine_line(),
        "threads": args.threads, "batch_sizes": list(args.batch_sizes), "seeds": args.seeds,
        "metaprep_epochs": epochs, "metaprep_lr": LR, "jobs": args.jobs,
        "align_s": round(align_s, 1) if mp else None,
        "sizes": {s: len(d[0]) for s, d in data.items()},
        "labels": len(set(data["train"][1])), "rows": rows,
        "runs": {s: results[s].runs for s in args.systems},
        "speed": {s: results[s].speed for s in args.systems},
    }


def carry_earlier(result: dict[str, Any], earlier: Mapping[str, Any]) -> None:
    """Append the rows of ``earlier`` for systems ``result`` did not run, each marked with the
    date and commit it was measured at (accuracy holds; speed came from another run)."""
    ran = {r["system"] for r in result["rows"]}
    when = f"{str(earlier.get('date', '?'))[:10]} at {earlier.get('commit', '?')}"
    for row in earlier.get("rows", []):
        if row["system"] in ran:
            continue
        note = row.get("note", "")
        if "earlier run" not in note:
            note = f"earlier run ({when}; speed not from this run)" + (f"; {note}" if note
                                                                     else "")
        result["rows"].append({**row, "note": note})
        for key in ("runs", "speed"):
            if row["system"] in earlier.get(key, {}):
                result[key][row["system"]] = earlier[key][row["system"]]
    if result.get("align_s") is None and earlier.get("align_s") is not None:
        # no metaprep system ran now: the carried metaprep rows' store and jobs are the earlier
        result["align_s"], result["jobs"] = earlier["align_s"], earlier.get("jobs")


def tally(values: Iterable[Any]) -> str:
    """'a x2, b': how often each value occurs."""
    from collections import Counter

    counts = Counter(str(v) for v in values if v is not None)
    return ", ".join(f"{k} x{n}" if n > 1 else k for k, n in counts.items())


# --- output ----------------------------------------------------------------------------------


def report(result: Mapping[str, Any]) -> str:
    sizes = result["sizes"]
    head = [
        f"## {result['task']}{' (--quick)' if result['quick'] else ''}: "
        f"{sizes['train']:,} train / {sizes['dev']:,} dev / {sizes['test']:,} test texts, "
        f"{result['labels']} labels",
        "",
        f"Measured {result['date']} .. {result['finished']} at commit `{result['commit']}`; "
        f"seeds {','.join(map(str, result['seeds']))}; {result['threads']} threads for every "
        f"system; metaprep {result['metaprep_epochs']} epochs max (a preset that sets its own "
        f"count: that count), lr {result['metaprep_lr']}.",
        f"Machine before: {result['machine_before']}.",
        f"Machine after: {result['machine_after']}.",
        "Speeds were taken on a shared machine under load: compare them within this table only.",
        "",
        "",
    ]
    notes = [f"- {r['system']}: {r['note']}" for r in result["rows"] if r.get("note")]
    systems = {r["system"] for r in result["rows"] if not r.get("skipped")}
    counts = [f"- {name}: {what}" for name, what in train_counts(result).items()
              if any(s == name or (name == "metaprep" and s.startswith("metaprep "))
                     for s in systems)]
    return "\n".join(head) + markdown_table(result["rows"]) + (
        "\n" + "\n".join(notes) + "\n" if notes else "") + (
        "\nWhat train (s) counts, per system (train texts/s: the training texts over it; "
        "run dir: the seed-0 metaprep run directory after training, next to the exported "
        "model's size):\n" + "\n".join(counts) + "\n" if counts else "")


def train_counts(result: Mapping[str, Any]) -> dict[str, str]:
    """What each system's train (s) is the wall time of (report's notes)."""
    align = result.get("align_s")
    jobs = result.get("jobs", 2)
    return {
        "metaprep": "the `metaprep train` command, process start to exit: reading and "
        "tokenizing the data, loading the store's tables, every epoch with its dev scoring, "
        "the test scoring and the attention analysis; one torch thread, "
        f"{jobs} trainings at once on the machine; not `metaprep align`, which builds the "
        "store once per task for every metaprep system"
        + (f" ({align:.0f} s here)" if align else "") + ", nor the export",
        "fasttext": "the epoch search: writing the training file, then one training per "
        "epoch count tried and its dev scoring (each training alone: train_s_by_epochs in the "
        "JSON)",
        "fasttext+glove": "as fasttext; each training reads the whole GloVe .vec (400k "
        "words) itself; writing that .vec, once, is not counted",
        "tfidf+linear": "fitting the TF-IDF features and both classifiers, and their dev "
        "scoring",
        "model2vec+logreg": "encoding train and dev and fitting the logistic regressions "
        "of the C grid (measured when first fitted, then kept); the distillation from MiniLM, "
        "done once, is not counted",
    }


def plot(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.8), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for r in res["rows"]:
            if "sentences_per_s" not in r or "accuracy_mean" not in r:
                continue
            color = "tab:blue" if r["system"].startswith("metaprep") else "tab:gray"
            earlier = "earlier run" in r.get("note", "")  # hollow: speed from another run
            ax.errorbar(r["sentences_per_s"], r["accuracy_mean"], yerr=r["accuracy_sd"],
                        fmt="o", color=color, capsize=3, mfc="none" if earlier else color)
            ax.annotate(r["system"], (r["sentences_per_s"], r["accuracy_mean"]),
                        textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.margins(x=0.25)
        ax.set_xlabel(f"sentences/s, end to end ({res['threads']} threads, log scale)")
        ax.set_ylabel("test accuracy (%), mean +- sd over seeds")
        ax.set_title(f"{res['task']}{' (quick)' if res['quick'] else ''} "
                     f"({res['date'][:10]}, {res['commit']})")
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, from: {', '.join(SYSTEMS)}")
    parser.add_argument("--threads", type=int, default=2, help="serving threads, everyone")
    parser.add_argument("--batch-sizes", default="32,256,2048",
                        help="tried for each system; the best is reported")
    parser.add_argument("--epochs", type=int, default=0,
                        help=f"metaprep epochs (default per task: {EPOCHS}; --quick: 1)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="metaprep trainings at once (one torch thread each)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 1 seed, 1 epoch, subsets; results under the work dir")
    parser.add_argument("--fresh", action="store_true", help="retrain and re-export metaprep")
    parser.add_argument("--data", default=str(HERE / "data" / "real"),
                        help="realdata.py's output directory")
    parser.add_argument("--results", default=None,
                        help=f"output directory (default {RESULTS}; --quick: {WORK}/quick)")
    parser.add_argument("--model2vec-python", default=None,
                        help="interpreter with model2vec[distill] (default: this one, else "
                        f"{M2V_VENV_PYTHON})")
    parser.add_argument("--keep-earlier", action="store_true",
                        help="carry the rows of systems not run now from the results already "
                        "there, marked with their date (their speeds are from another run)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw frontier.png from the JSON results already written")
    parser.add_argument("--worker-model2vec", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker_model2vec is not None:
        print(json.dumps(model2vec_worker(json.loads(args.worker_model2vec))))
        return 0
    _set_thread_env(args.threads)
    args.tasks = [t for t in args.tasks.split(",") if t]
    args.seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",") if s]
    args.systems = [s for s in args.systems.split(",") if s]
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    bad = [t for t in args.tasks if t not in TASKS] + [s for s in args.systems
                                                       if s not in SYSTEMS]
    if bad or not args.seeds or not args.batch_sizes:
        parser.error(f"unknown task/system {bad}, or no seeds / batch sizes")
    out_dir = Path(args.results) if args.results else (WORK / "quick" if args.quick else RESULTS)
    from metaprep.errors import MetaprepError

    done: list[str] = []
    for task in [] if args.plot_only else args.tasks:
        try:
            result = run_task(task, args)
        except MetaprepError as exc:
            print(f"error: {task}: {exc}", file=sys.stderr)
            return 2
        if args.keep_earlier:
            with contextlib.suppress(OSError, json.JSONDecodeError):
                carry_earlier(result, json.loads(
                    (out_dir / f"frontier-{task}.json").read_text(encoding="utf-8")))
        text = report(result)
        print(text)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"frontier-{task}.md").write_text(text, encoding="utf-8")
        (out_dir / f"frontier-{task}.json").write_text(
            json.dumps(result, indent=2) + "\n", encoding="utf-8")
        done.append(task)
    found = []  # every task with results in out_dir, this run's or an earlier one's
    for task in TASKS:
        with contextlib.suppress(OSError, json.JSONDecodeError):
            found.append(json.loads((out_dir / f"frontier-{task}.json").read_text("utf-8")))
    if found:
        plot(found, out_dir / "frontier.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
