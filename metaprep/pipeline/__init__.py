"""Pipelines: one TOML file names the stages to run, in order, with the options the single
commands take.

    [pipeline]                   name = "quickstart"   (outputs under artifacts/<name>/)
    [split]  data = ...          metaprep split     -> artifacts/<name>/split/{train,dev,test}.tsv
    [align]  sources = {...}     metaprep align     -> artifacts/<name>/align/store.h5
    [train]  method = "dme"      metaprep train     -> artifacts/<name>/train/run/
    [export] fold = true         metaprep export-onnx -> artifacts/<name>/export/model/
    [evaluate]                   metaprep evaluate  (the run on the test split)
    [predict] input = ...        metaprep predict   -> artifacts/<name>/predict/predictions.jsonl

There is one schema: each section's keys are the options of its command (``--proj-dim`` is
``proj_dim``), checked against the command's own click parameters, so a pipeline accepts exactly
what the command line accepts. Values may name upstream outputs as ``{split}``, ``{align}``, ...
(the stage's output directory); obvious wiring (the store into train, the run into export) is
filled in when a key is not given. A path starting ``pkg:`` resolves inside an installed package
(``pkg:gensim/test/test_data/test_glove.txt``); other relative paths resolve against the pipeline
file's directory.

Each stage records the hash of its inputs (its arguments, the sha256 of every input file, the
upstream stage's hash); a rerun skips a stage whose hash did not change.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from metaprep.atomic import atomic_path
from metaprep.checksum import file_sha256
from metaprep.errors import ConfigError

__all__ = ["STAGES", "Pipeline", "StagePlan", "load_pipeline", "run_pipeline"]

STAGES = ("split", "align", "train", "export", "evaluate", "predict")
_COMMANDS = {"export": "export-onnx"}
_RECORD = ".metaprep-stage.json"
_PLACEHOLDER = re.compile(r"\{(" + "|".join(STAGES) + r")\}")

# Where each stage writes (relative to its stage directory) and what it takes from upstream when
# the pipeline does not say. Values are templates over the stage directories.
_OUTPUT = {"split": "", "align": "store.h5", "train": "run", "export": "model",
           "evaluate": "", "predict": "predictions.jsonl"}
_WIRING: dict[str, dict[str, str]] = {
    "train": {"store": "{align}/store.h5", "train": "{split}/train.tsv", "dev": "{split}/dev.tsv",
              "test": "{split}/test.tsv"},
    "export": {"run_dir": "{train}/run"},
    "evaluate": {"run_dir": "{train}/run", "data": "{split}/test.tsv"},
    "predict": {"model_dir": "{export}/model", "input_path": "{split}/test.tsv"},
}


@dataclass
class StagePlan:
    name: str
    command: click.Command
    argv: list[str]
    out_dir: Path
    inputs_hash: str = ""
    action: str = "run"  # run | skip | force
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pipeline:
    path: Path
    name: str
    root: Path  # artifacts/<name>
    stages: list[StagePlan]


# --- loading --------------------------------------------------------------------------------
def _resolve_path(value: str, base: Path, where: str, file: Path, is_path: bool) -> str:
    if value.startswith("pkg:"):
        package, _, rel = value[4:].partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"{where}: package {package!r} is not installed", path=file,
                              hint=f"pip install {package}")
        return str(Path(list(spec.submodule_search_locations)[0]) / rel)
    if _PLACEHOLDER.search(value) or value.startswith("/"):
        return value
    candidate = Path(os.path.normpath(base / value))
    # Path options are always rebased on the pipeline file's folder; other values ("dme",
    # "union", a regex, NAME=PATH parts) only when they name an existing file there.
    return str(candidate) if (is_path or candidate.exists()) else value


def _keys(p: click.Parameter) -> list[str]:
    """The TOML keys that name a parameter: its long option names (``--proj-dim`` is
    ``proj_dim``) or, for an argument, its name."""
    if isinstance(p, click.Option):
        return [o.lstrip("-").replace("-", "_") for o in p.opts if o.startswith("--")]
    return [p.name or ""]


def _option_for(command: click.Command, key: str) -> click.Parameter | None:
    name = key.replace("-", "_")
    for p in command.params:
        if name in _keys(p):
            return p
    return None


def _output_param(command: click.Command) -> click.Option | None:
    for p in command.params:
        if isinstance(p, click.Option) and "-o" in p.opts:
            return p
    return None


def _long_opt(p: click.Option) -> str:
    return max(p.opts, key=len)


def _to_argv(
    command: click.Command, section: str, options: dict[str, Any], file: Path
) -> list[str]:
    """Turn a TOML table into the command line its command would be given."""
    argv: list[str] = []
    positional: dict[str, list[str]] = {}
    for key, value in options.items():
        p = _option_for(command, key)
        if p is None:
            known = sorted(k for q in command.params for k in _keys(q)[:1] if k != "help")
            raise ConfigError(
                f"[{section}] unknown key {key!r}; `metaprep {command.name}` takes: "
                + ", ".join(known), path=file)
        if isinstance(value, dict):
            values = [f"{k}={v}" for k, v in value.items()]
        elif isinstance(value, list):
            values = [str(v) for v in value]
        else:
            values = [value]  # type: ignore[list-item]
        if isinstance(p, click.Argument):
            positional[p.name or key] = [str(v) for v in values]
            continue
        if not isinstance(p, click.Option):
            continue
        if p.is_flag and not isinstance(value, bool):
            raise ConfigError(f"[{section}] {key} must be true or false", path=file)
        if p.is_flag:
            if value:
                argv.append(p.opts[0])
            elif p.secondary_opts:
                argv.append(p.secondary_opts[0])
            continue
        if len(values) > 1 and not p.multiple:
            raise ConfigError(f"[{section}] {key} takes one value, not a list", path=file)
        for v in values:
            argv += [_long_opt(p), str(v).lower() if isinstance(v, bool) else str(v)]
    # Arguments go first, in the command's order.
    args = [v for p in command.params if isinstance(p, click.Argument) and p.name in positional
            for v in positional[p.name]]
    return args + argv


def load_pipeline(path: str | Path, *, artifacts: str | Path = "artifacts") -> Pipeline:
    """Read and validate a pipeline file; nothing runs."""
    from metaprep.cli import cli

    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("no such pipeline file", path=file) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=file) from exc
    unknown = sorted(set(data) - set(STAGES) - {"pipeline"})
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; known: pipeline, "
                          + ", ".join(STAGES), path=file)
    head = data.get("pipeline", {})
    bad = sorted(set(head) - {"name"})
    if bad:
        raise ConfigError(f"[pipeline] unknown key(s) {', '.join(bad)}; known: name", path=file)
    name = str(head.get("name", file.stem))
    root = Path(artifacts) / name
    base = file.resolve().parent
    present = [s for s in STAGES if s in data]
    if not present:
        raise ConfigError("the pipeline names no stage", path=file,
                          hint="add sections such as [align] and [train]")
    stages: list[StagePlan] = []
    dirs = {s: str(root / s) for s in STAGES}
    for stage in present:
        table = data[stage]
        if not isinstance(table, dict):
            raise ConfigError(f"[{stage}] must be a table", path=file)
        ctx = click.Context(cli)
        command = cli.get_command(ctx, _COMMANDS.get(stage, stage))
        if command is None:
            raise ConfigError(f"[{stage}] needs the `{_COMMANDS.get(stage, stage)}` command, "
                              "which this installation lacks", path=file)
        options = {}
        for key, value in table.items():
            param = _option_for(command, key)
            is_path = param is not None and isinstance(param.type, (click.Path, click.File))
            options[key] = _resolve_value(value, base, f"[{stage}] {key}", file, is_path)
        for key, template in _WIRING.get(stage, {}).items():
            upstream = _PLACEHOLDER.findall(template)
            if key not in options and all(u in present for u in upstream):
                if _option_for(command, key) is not None:
                    options[key] = template
        out = _output_param(command)
        if out is not None and not any(k in options for k in _keys(out)):
            options[_keys(out)[0]] = str(Path(dirs[stage]) / _OUTPUT[stage])
        options = {k: _expand(v, dirs, present, stage, file) for k, v in options.items()}
        argv = _to_argv(command, stage, options, file)
        stages.append(StagePlan(stage, command, argv, Path(dirs[stage])))
    return Pipeline(file, name, root, stages)


def _resolve_value(value: Any, base: Path, where: str, file: Path, is_path: bool) -> Any:
    if isinstance(value, str):
        return _resolve_path(value, base, where, file, is_path)
    if isinstance(value, dict):
        return {k: _resolve_value(v, base, where, file, is_path) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_value(v, base, where, file, is_path) for v in value]
    return value


def _expand(value: Any, dirs: dict[str, str], present: list[str], stage: str, file: Path) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, dirs, present, stage, file) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, dirs, present, stage, file) for v in value]
    if not isinstance(value, str):
        return value
    for ref in _PLACEHOLDER.findall(value):
        if ref not in present or STAGES.index(ref) >= STAGES.index(stage):
            raise ConfigError(f"[{stage}] refers to {{{ref}}}, which is not an earlier stage "
                              "of this pipeline", path=file)
    return _PLACEHOLDER.sub(lambda m: dirs[m.group(1)], value)


# --- hashing --------------------------------------------------------------------------------
def _file_hash(path: Path, cache: dict[str, Any]) -> str:
    st = path.stat()
    key = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if key not in cache:
        cache[key] = file_sha256(path)
    return str(cache[key])


def _inputs_hash(plan: StagePlan, upstream: str, root: Path, cache: dict[str, Any]) -> str:
    files = {}
    for arg in plan.argv:
        candidate = arg.split("=", 1)[-1] if "=" in arg and not arg.startswith("-") else arg
        p = Path(candidate)
        # Outputs of earlier stages are covered by their stage's hash (chained in `upstream`),
        # so only files from outside the pipeline's own directory are hashed by content.
        if p.resolve().is_relative_to(root.resolve()):
            continue
        if p.is_file():
            files[candidate] = _file_hash(p, cache)
        elif p.is_dir():  # a run or model directory made elsewhere: what it holds, and when
            files[candidate] = _dir_listing(p)
    record = {"stage": plan.name, "argv": plan.argv, "files": files, "upstream": upstream}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _dir_listing(path: Path) -> str:
    """A cheap fingerprint of a directory: every file's name, size and modification time."""
    entries = sorted(
        f"{f.relative_to(path)}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
        for f in path.rglob("*") if f.is_file()
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def _read_record(out_dir: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads((out_dir / _RECORD).read_text()))
    except (OSError, ValueError):
        return None


# --- running --------------------------------------------------------------------------------
def plan_pipeline(pipe: Pipeline, *, force: str | None = None, save: bool = True) -> None:
    """Fill in each stage's inputs hash and whether it runs, is forced or is skipped."""
    if force is not None and force not in [s.name for s in pipe.stages]:
        raise ConfigError(f"--force {force}: the pipeline has no such stage; it has "
                          + ", ".join(s.name for s in pipe.stages), path=pipe.path)
    cache_file = pipe.root / ".hash-cache.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    upstream, rerun = "", False
    for plan in pipe.stages:
        plan.inputs_hash = _inputs_hash(plan, upstream, pipe.root, cache)
        upstream = plan.inputs_hash
        record = _read_record(plan.out_dir)
        if force == plan.name:
            rerun, plan.action = True, "force"
        elif rerun:
            plan.action = "run"
        elif record is not None and record.get("hash") == plan.inputs_hash:
            plan.action = "skip"
            plan.figures = dict(record.get("figures", {}))
            plan.seconds = float(record.get("seconds", 0.0))
        else:
            plan.action, rerun = "run", True
    if save:  # a dry run leaves no trace
        pipe.root.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache))


def run_pipeline(
    path: str | Path,
    *,
    artifacts: str | Path = "artifacts",
    force: str | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> Pipeline:
    """Run (or with ``dry_run`` only plan) a pipeline file; returns the plan with figures."""
    from metaprep.pipeline.figures import stage_figures

    pipe = load_pipeline(path, artifacts=artifacts)
    plan_pipeline(pipe, force=force, save=not dry_run)
    for plan in pipe.stages:
        label = {"skip": "skip (inputs unchanged)", "force": "run (forced)"}.get(plan.action, "run")
        echo(f"[{plan.name}] {label}: metaprep {plan.command.name} " + " ".join(plan.argv))
    if dry_run:
        return pipe
    for plan in pipe.stages:
        if plan.action == "skip":
            continue
        echo(f"\n== {plan.name} ==")
        # The last good output stays aside until the rerun succeeds, and comes back if it fails.
        old = plan.out_dir.with_name(f".{plan.out_dir.name}.previous")
        if old.exists():
            shutil.rmtree(old)
        if plan.out_dir.exists():
            plan.out_dir.rename(old)
        plan.out_dir.mkdir(parents=True)
        start = time.perf_counter()
        try:
            plan.command.main(args=list(plan.argv), prog_name=f"metaprep {plan.command.name}",
                              standalone_mode=False)
        except BaseException as exc:
            shutil.rmtree(plan.out_dir, ignore_errors=True)
            if old.exists():
                old.rename(plan.out_dir)
            if isinstance(exc, click.ClickException):
                raise ConfigError(f"[{plan.name}] {exc.format_message()}",
                                  path=pipe.path) from exc
            raise
        shutil.rmtree(old, ignore_errors=True)
        plan.seconds = time.perf_counter() - start
        plan.figures = stage_figures(plan.name, plan.out_dir)
        record = {"hash": plan.inputs_hash, "argv": plan.argv, "seconds": plan.seconds,
                  "figures": plan.figures, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with atomic_path(plan.out_dir / _RECORD) as tmp:
            tmp.write_text(json.dumps(record, indent=2))
        sys.stdout.flush()
    return pipe
