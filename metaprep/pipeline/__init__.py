"""Pipelines: one TOML file names the stages to run, in order, with the options of the same
library stages the commands call (``metaprep.stages``).

    [pipeline]                   name = "quickstart"   (outputs under artifacts/<name>/)
    [split]  data = ...          stages.split     -> artifacts/<name>/split/{train,dev,test}.tsv
    [align]  sources = {...}     stages.align     -> artifacts/<name>/align/store.h5
    [train]  method = "dme"      stages.train     -> artifacts/<name>/train/run/
    [export] fold = true         stages.export    -> artifacts/<name>/export/model/
    [evaluate]                   stages.evaluate  (the run on the test split)
    [predict] input = ...        stages.predict   -> artifacts/<name>/predict/predictions.jsonl

A section's keys are the fields of that stage's options dataclass (``proj_dim = 64``), checked
with their types when the file is loaded, so a dry run catches ``epochs = "many"``. Values may
name upstream outputs as ``{split}``, ``{align}``, ... (the stage's directory); the obvious
wiring (the store into train, the run into export) is filled in when a key is not given. Input
paths starting ``pkg:`` resolve inside an installed package without importing it
(``pkg:gensim/test/test_data/test_glove.txt``); other relative input paths resolve against the
pipeline file's folder. Outputs always land in the stage's own directory.

Each stage records the hash of its inputs (its options, the sha256 of every input file from
outside the pipeline's folder, the upstream stage's hash); a rerun skips a stage whose hash did
not change.

A run holds the pipeline's lock (``artifacts/.<name>.lock``) before it touches anything, so a
second run of the same pipeline is refused and changes nothing. A stage's folder is complete
once its record is written, last; a rerun sets the complete folder aside
(``.<stage>.previous``) until it succeeds, and whatever kills or failures come between, the
next run finds the last good output back in place (``_recover``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from metaprep.atomic import atomic_path
from metaprep.checksum import file_sha256
from metaprep.errors import ConfigError
from metaprep.names import check_name
from metaprep.outputs import check_paths, hold, input_paths
from metaprep.pipeline.options import StageSpec, build_options, stage_specs

__all__ = ["STAGES", "Pipeline", "StagePlan", "load_pipeline", "plan_pipeline", "run_pipeline"]

STAGES = ("split", "align", "train", "export", "evaluate", "predict")
_RECORD = ".metaprep-stage.json"


@dataclass
class StagePlan:
    name: str
    spec: StageSpec
    options: Any  # the stage's options dataclass, paths resolved
    out_dir: Path
    inputs_hash: str = ""
    action: str = "run"  # run | skip | force
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The options that differ from their defaults (or have none), as key=value."""
        given = {}
        for f in fields(self.options):
            value = getattr(self.options, f.name)
            default = (f.default if f.default is not MISSING else f.default_factory()
                       if f.default_factory is not MISSING else MISSING)
            if value != default:
                given[f.name] = value
        return " ".join(f"{k}={_short(v)}" for k, v in given.items())


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass
class Pipeline:
    path: Path
    name: str
    root: Path  # artifacts/<name>
    stages: list[StagePlan]


# --- loading --------------------------------------------------------------------------------
MAX_PIPELINE_BYTES = 1 << 20  # a pipeline file is a few dozen lines


def _read_toml(file: Path) -> dict[str, Any]:
    """The file's TOML; a pipe, a device or a huge file is refused before it is read (a FIFO
    hung the run, /dev/zero filled memory), deep nesting is an error, not a RecursionError."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError("the pipeline file is not a regular file (a folder, pipe or "
                                  "device)", path=file, hint="give a PIPELINE.toml")
            raw = f.read(MAX_PIPELINE_BYTES + 1)
        if len(raw) > MAX_PIPELINE_BYTES:
            raise ConfigError(f"the pipeline file is larger than {MAX_PIPELINE_BYTES:,} bytes",
                              path=file, hint="a pipeline file names stages and options")
        return tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("no such pipeline file", path=file,
                          hint="give a PIPELINE.toml, or the name of a packaged pipeline "
                               "(quickstart)") from exc
    except IsADirectoryError as exc:
        raise ConfigError("the pipeline file is a folder", path=file,
                          hint="give a PIPELINE.toml") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the pipeline file: {exc.strerror or exc}",
                          path=file) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the pipeline file is not UTF-8 ({exc.reason} at byte "
                          f"{exc.start})", path=file) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=file) from exc
    except RecursionError as exc:
        raise ConfigError("not valid TOML: nested too deeply", path=file) from exc


def find_pipeline(name_or_path: str | Path) -> Path:
    """A pipeline file, or the name of one shipped inside the package (``quickstart``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml" or "/" in str(name_or_path):
        return path
    packaged = Path(__file__).resolve().parents[1] / "pipelines" / f"{name_or_path}.toml"
    if packaged.is_file():
        return packaged
    known = sorted(p.stem for p in packaged.parent.glob("*.toml"))
    raise ConfigError(f"no pipeline file or packaged pipeline named {str(name_or_path)!r}",
                      hint=f"packaged pipelines: {', '.join(known) or 'none'}")


def load_pipeline(path: str | Path, *, artifacts: str | Path = "artifacts") -> Pipeline:
    """Read and validate a pipeline file; nothing runs and nothing is imported from it."""
    file = find_pipeline(path)
    data = _read_toml(file)
    unknown = sorted(set(data) - set(STAGES) - {"pipeline"})
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; known: pipeline, "
                          + ", ".join(STAGES), path=file)
    head = data.get("pipeline", {})
    bad = sorted(set(head) - {"name"}) if isinstance(head, dict) else ["(not a table)"]
    if bad:
        raise ConfigError(f"[pipeline] unknown key(s) {', '.join(bad)}; known: name", path=file)
    name = check_name(head.get("name", file.stem), "[pipeline] name", path=file,
                      hint='its outputs go to <artifacts>/<name>/: name = "my-pipeline"')
    root = Path(artifacts) / name
    present = [s for s in STAGES if s in data]
    if not present:
        raise ConfigError("the pipeline names no stage", path=file,
                          hint="add sections such as [align] and [train]")
    specs = stage_specs()
    dirs = {s: root / s for s in STAGES}
    stages = []
    for stage in present:
        if not isinstance(data[stage], dict):
            raise ConfigError(f"[{stage}] must be a table", path=file)
        options = build_options(specs[stage], stage, data[stage], file=file, dirs=dirs,
                                present=present)
        stages.append(StagePlan(stage, specs[stage], options, dirs[stage]))
    return Pipeline(file, name, root, stages)


# --- hashing --------------------------------------------------------------------------------
def _file_hash(path: Path, cache: dict[str, Any]) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if key not in cache:
        cache[key] = file_sha256(path)
    return str(cache[key])


def _inputs_hash(plan: StagePlan, upstream: str, root: Path, cache: dict[str, Any]) -> str:
    files = {}
    for p in input_paths(plan.options):
        name = str(p)
        # Outputs of earlier stages are covered by their stage's hash (chained in `upstream`),
        # so only files from outside the pipeline's own directory are hashed by content.
        if p.resolve().is_relative_to(root.resolve()):
            continue
        if p.is_file():
            files[name] = _file_hash(p, cache)
        elif p.is_dir():  # a run or model directory made elsewhere: what it holds, and when
            files[name] = _dir_listing(p)
    options = json.loads(json.dumps(asdict(plan.options), default=str))
    record = {"stage": plan.name, "options": options, "files": files, "upstream": upstream}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _dir_listing(path: Path) -> str:
    """A cheap fingerprint of a directory: every file's name, size and modification time."""
    entries = sorted(
        f"{f.relative_to(path)}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
        for f in path.rglob("*") if f.is_file()
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _read_json(path: Path) -> Any:
    """A file metaprep wrote in the pipeline's folder, or None if it is missing or damaged (it
    is then made again, never a traceback)."""
    try:
        if path.is_symlink() or not path.is_file():  # a FIFO would block the read
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


def _read_record(out_dir: Path) -> dict[str, Any] | None:
    """The stage folder's record, or None: a folder without a well-formed one is not complete."""
    record = _read_json(out_dir / _RECORD)
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str) \
            or not isinstance(record.get("figures", {}), dict):
        return None
    return record


# --- running --------------------------------------------------------------------------------
def plan_pipeline(pipe: Pipeline, *, force: str | None = None, save: bool = True) -> None:
    """Fill in each stage's inputs hash and whether it runs, is forced or is skipped. With
    ``save`` it also mends what killed runs left (``_recover``) and saves the hash cache: call it
    so under the pipeline's lock, as ``run_pipeline`` does."""
    if force is not None and force not in [s.name for s in pipe.stages]:
        raise ConfigError(f"--force {force}: the pipeline has no such stage; it has "
                          + ", ".join(s.name for s in pipe.stages), path=pipe.path)
    cache_file = pipe.root / ".hash-cache.json"
    cache = _read_json(cache_file)
    if not isinstance(cache, dict):
        cache = {}
    upstream, rerun = "", False
    for plan in pipe.stages:
        if save:
            _recover(plan.out_dir)
        plan.inputs_hash = _inputs_hash(plan, upstream, pipe.root, cache)
        upstream = plan.inputs_hash
        # a killed rerun's half-written folder has no record: the last good one counts (and a
        # real run puts it back first, in _recover; a dry run only reads)
        record = _read_record(plan.out_dir) or _read_record(_aside(plan.out_dir))
        if force == plan.name:
            rerun, plan.action = True, "force"
        elif rerun:
            plan.action = "run"
        elif record is not None and record.get("hash") == plan.inputs_hash:
            plan.action = "skip"
            plan.figures = dict(record.get("figures", {}))
        else:
            plan.action, rerun = "run", True
    if save:  # a dry run leaves no trace
        pipe.root.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_file) as tmp:
            tmp.write_text(json.dumps(cache))


def _aside(out_dir: Path) -> Path:
    """Where a stage's last good output waits while a rerun writes the stage folder."""
    return out_dir.with_name(f".{out_dir.name}.previous")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _recover(out_dir: Path) -> None:
    """After a killed run, the stage folder is its last good output again. The folder set aside
    comes back over a half-written one (without its record, written last); beside a complete
    folder (a rerun killed once it had finished), it is dropped. Safe to repeat at any point:
    each step leaves a state this function mends."""
    old = _aside(out_dir)
    if not (old.exists() or old.is_symlink()):
        return
    if _read_record(out_dir) is not None:
        _remove(old)
        return
    _remove(out_dir)
    old.rename(out_dir)


def _run_stage(plan: StagePlan, pipe: Pipeline) -> None:
    """Run one stage into a fresh stage directory; the last good output stays aside until the
    rerun succeeds, and comes back if it fails (or, if it is killed, on the next run)."""
    from metaprep.pipeline.figures import stage_figures

    _recover(plan.out_dir)
    old = _aside(plan.out_dir)
    if _read_record(plan.out_dir) is not None:
        plan.out_dir.rename(old)
    else:  # half written by a killed first run: nothing good in it
        _remove(plan.out_dir)
    plan.out_dir.mkdir(parents=True)
    start = time.perf_counter()
    try:
        plan.spec.run(plan.options)
    except BaseException:
        shutil.rmtree(plan.out_dir, ignore_errors=True)
        if old.exists() and not plan.out_dir.exists():
            old.rename(plan.out_dir)
        raise  # (a folder rmtree could not remove: the next run's _recover mends it)
    plan.seconds = time.perf_counter() - start
    plan.figures = stage_figures(plan.name, plan.out_dir)
    record = {"hash": plan.inputs_hash, "seconds": plan.seconds, "figures": plan.figures,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with atomic_path(plan.out_dir / _RECORD) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _only_run(pipe: Pipeline) -> Iterator[None]:
    """The pipeline's lock, for the whole run: a second `metaprep run` of it is refused before it
    touches anything (it used to set the first's stage folder aside)."""
    busy = (f"another `metaprep run` of pipeline {pipe.name!r} is running (it holds "
            f"{pipe.root}); nothing was changed", "wait for it to finish")
    check_paths("run", {"--artifacts": pipe.root}, {})  # not under a file, device or pipe
    with hold(pipe.root, busy=busy):
        yield


def run_pipeline(
    path: str | Path,
    *,
    artifacts: str | Path = "artifacts",
    force: str | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> Pipeline:
    """Run (or with ``dry_run`` only plan) a pipeline file; returns the plan with figures."""
    pipe = load_pipeline(path, artifacts=artifacts)
    with nullcontext() if dry_run else _only_run(pipe):  # a dry run writes (and locks) nothing
        plan_pipeline(pipe, force=force, save=not dry_run)
        for plan in pipe.stages:
            label = {"skip": "skip (inputs unchanged)", "force": "run (forced)"}.get(plan.action,
                                                                                     "run")
            echo(f"[{plan.name}] {label}: {plan.describe()}")
        if dry_run:
            return pipe
        for plan in pipe.stages:
            if plan.action == "skip":
                continue
            echo(f"\n== {plan.name} ==")
            try:
                _run_stage(plan, pipe)
            except ConfigError as exc:
                if exc.path is None:  # an option error: say which section it came from
                    raise ConfigError(f"[{plan.name}] {exc.message}", path=pipe.path,
                                      hint=exc.hint) from exc
                raise
            sys.stdout.flush()
    return pipe
