"""What a training run starts from: a new run's inputs checked and read, or a resumed run's saved
description checked against what the caller gave (learn/train.py runs the epochs).

    prepare(cfg, out, inputs, resume=...) -> Prepared(run, data, from_checkpoint)

A new run needs a store, a train and a dev file; nothing is written before all of them check
out. A resume needs only the run directory: the saved config, store and data files are used, and
any of them given must be the same (files by sha256, options by value). A run killed before its
first checkpoint holds nothing to lose: a new run starts over it, a resume starts it from scratch.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metaprep.checksum import file_sha256
from metaprep.errors import ConfigError, DataError, ModelError, StoreError
from metaprep.learn.config import OPTIONS, RunConfig
from metaprep.learn.data import LabelMap, TaskData, TextEncoder, load_labelsets, load_task
from metaprep.learn.memory import check_memory, train_estimate
from metaprep.learn.rundir import (
    BEST,
    CHECKPOINT,
    CONFIG,
    DATA,
    METRICS,
    SPLITS,
    DataRecord,
    FileRef,
    Run,
    StoreRef,
    run_state,
    scratch_folder,
)
from metaprep.prep.store import Store
from metaprep.taskdata import Columns

__all__ = ["Data", "Prepared", "finished", "prepare", "restore"]

Data = tuple[TaskData, TaskData, "TaskData | None"]  # train, dev, test


@dataclass
class Prepared:
    run: Run  # the store handle is open: the caller builds the model, then closes it
    data: Data
    from_checkpoint: bool  # resume from checkpoint.pt (else: from scratch)


def prepare(cfg: RunConfig, out: Path, inputs: dict[str, Any], *, resume: bool,
            overrides: dict[str, Any] | None, write: bool, encoding: str,
            columns: Columns | None = None,
            show: bool) -> Prepared:
    """``inputs``: store, train, dev, test paths (or None). ``overrides``: the options the caller
    gave explicitly; None: the fields of ``cfg`` that differ from the defaults. ``write``: this
    process describes a new run (rank 0)."""
    status = run_state(out)
    if resume and status == "empty":
        raise ConfigError("nothing to resume: no run here", path=out,
                          hint="start the run without --resume")
    if not resume and status in ("checkpointed", "weights-only"):
        raise ConfigError("already holds a run", path=out,
                          hint="pass --resume to continue it, or choose another -o")
    if resume:
        given = overrides if overrides is not None else _non_default(cfg)
        run, data = _reopen(out, given, inputs, encoding=encoding, show=show)
    else:
        run, data = _start(cfg, out, inputs, write=write, encoding=encoding, show=show,
                           columns=columns or Columns())
    if status == "started" and write:  # starting over: drop weights no checkpoint followed
        (out / BEST).unlink(missing_ok=True)
    return Prepared(run, data, from_checkpoint=status == "checkpointed")


def finished(out: Path, cfg: RunConfig, inputs: dict[str, Any],
             overrides: dict[str, Any] | None) -> dict[str, Any] | None:
    """A resume of a finished run (best weights and final metrics, its checkpoint removed):
    the options and store given checked against the run's, then its recorded metrics; None
    when ``out`` holds no finished run."""
    if run_state(out) != "weights-only":
        return None
    with Run.open(out, store=inputs["store"]) as run:
        _check_options(run, overrides if overrides is not None else _non_default(cfg))
        metrics = run.metrics
    if not isinstance(metrics, dict) or "dev" not in metrics:
        raise ModelError("a finished run whose metrics lack their final scores",
                         path=out / METRICS, hint="train the run again in a new directory")
    return metrics


def restore(run: Run, model: torch.nn.Module, opt: Any, *, map_location: Any,
            progress: dict[str, Any]
            ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, torch.Tensor] | None]:
    """Load the checkpoint into ``model`` and ``opt``: (progress counters, epoch history, best
    weights so far), each checked against ``progress`` (the fresh counters: their keys and
    types), the config and the model. Checkpoints written before the best weights went into
    them have theirs in best.safetensors."""
    from metaprep.learn.optim import optimizer_settings, state_problem

    ckpt = run.load_checkpoint(map_location=map_location)
    ckpt.progress.setdefault("world", 1)  # checkpoints before the count was kept
    if ckpt.progress["world"] != progress["world"]:
        raise ModelError(f"the run was checkpointed by {ckpt.progress['world']} training "
                         f"process(es), this resume has {progress['world']}: each epoch's "
                         "batches are split between them", path=run.path / CHECKPOINT,
                         hint=f"resume with {ckpt.progress['world']} process(es) (torchrun "
                              "--nnodes and --nproc-per-node as before)")
    fresh = optimizer_settings(opt)
    try:
        why = _progress_problem(ckpt.progress, progress, run.config) or _history_problem(
            ckpt.history, ckpt.progress["epoch"])
        if why:
            raise ValueError(why)
        model.load_state_dict(ckpt.model, strict=True)
        opt.load_state_dict(ckpt.optimizer)
        why = state_problem(opt, fresh)
        if why:
            raise ValueError(why)
        best = ckpt.best
        if best is None and ckpt.progress["best_epoch"] > 0:
            best = run.load_best()
        why = _best_problem(best, model, ckpt.progress["best_epoch"])
        if why:
            raise ValueError(why)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        why = " ".join(str(exc).split())[:300]  # torch's message spans lines
        raise ModelError(f"the checkpoint does not fit the run: {why}", path=run.path / CHECKPOINT,
                         hint="config.json was edited, or the checkpoint is damaged") from exc
    return dict(ckpt.progress), list(ckpt.history), best


def _best_problem(best: dict[str, torch.Tensor] | None, model: torch.nn.Module,
                  best_epoch: int) -> str | None:
    """Best weights that would not load into ``model`` at the end, or none after a best epoch."""
    if best is None:
        return "no best weights for its best epoch" if best_epoch > 0 else None
    want = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
    got = {k: (v.shape, v.dtype) if isinstance(v, torch.Tensor) else v for k, v in best.items()}
    return None if got == want else "its best weights do not fit the model"


def _progress_problem(got: dict[str, Any], fresh: dict[str, Any], cfg: RunConfig) -> str | None:
    """The loop's counters: the fresh ones' keys and types, finite, in range."""
    if set(got) != set(fresh):
        return f"progress has keys {sorted(got)}, not {sorted(fresh)}"
    for key, value in got.items():
        kind = type(fresh[key])
        ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
        if kind is float:  # a float counter may have been saved as a whole number
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value)
        if not ok:
            return f"progress {key} is {value!r}"
    if not 0 <= got["epoch"] <= cfg.epochs or not -1 <= got["best_epoch"] <= got["epoch"]:
        return f"progress epoch {got['epoch']} / best epoch {got['best_epoch']} out of range"
    if min(got[k] for k in ("batch", "step", "bad_epochs", "correct", "seen")) < 0 \
            or not got["lr"] > 0:
        return "progress holds a negative count or an lr of 0 or less"
    return None


def _history_problem(history: list[Any], epochs: int) -> str | None:
    """One record per finished epoch, of numbers (the plots and metrics.json read them)."""
    if len(history) != epochs:
        return f"history holds {len(history)} epochs, progress says {epochs}"
    for record in history:
        if not isinstance(record, dict) or any(
                isinstance(record.get(k), bool) or not isinstance(record.get(k), (int, float))
                for k in ("epoch", "lr", "train_loss", "train_accuracy", "dev_accuracy")):
            return "a history record is not an epoch's numbers"
    return None


# --- a new run ----------------------------------------------------------------------------------
def _start(cfg: RunConfig, out: Path, inputs: dict[str, Any], *, write: bool, encoding: str,
           show: bool, columns: Columns) -> tuple[Run, Data]:
    missing = [f"--{k}" for k in ("store", "train", "dev") if inputs[k] is None]
    if missing:
        raise ConfigError(f"a new run needs {', '.join(missing)}", path=out,
                          hint="give them, or pass --resume to continue the run there")
    st = Store(inputs["store"])
    try:
        files = {k: FileRef.of(inputs[k]) for k in SPLITS if inputs[k] is not None}
        cfg = _resolve_config(cfg, st)
        # before anything large is read: a note above the memory goal, a refusal above free RAM
        sizes = sum(Path(inputs[k]).stat().st_size for k in files)
        check_memory(train_estimate(cfg, [st.vectors(s).dtype.itemsize for s in cfg.sources],
                                    data_bytes=sizes),
                     path=st.path, log=_note if show and write else None)
        encoder = TextEncoder.from_store(st, max_tokens=cfg.max_tokens)
        labels, data = _read_data({k: Path(inputs[k]) for k in files}, encoder, None,
                                  encoding=encoding, show=show, columns=columns, cfg=cfg,
                                  out=out)
        cfg = replace(cfg, num_labels=len(labels), pair=data[0].pair)
        tokens = sum(len(flat) for flat, _ in data[0].examples.sides)
        resolved = cfg.for_tokens(tokens)
        if resolved != cfg:
            cfg = resolved
            if show and write:
                _note(f"the learned source is left out: the train split has {tokens:,} tokens, "
                      f"fewer than learned_min_tokens ({cfg.learned_min_tokens:,}; "
                      "--set learned_min_tokens=0 keeps it)")
        if cfg.pool_combiner == "auto":
            median = float(np.median(data[0].lengths())) if len(data[0]) else 0.0
            cfg = cfg.for_lengths(median)
            if cfg.pool_combiner == "sqrtn" and cfg.encoder == "pool" and show and write:
                _note(f"long texts (median {median:.0f} tokens): the pool encoder divides each "
                      "sum by sqrt(n), not n (pool_combiner sqrtn)")
        # other ranks never write or check the store record: they skip hashing the store
        sha = st.sha256() if write else ""
        ref = StoreRef(str(st.path.resolve()), sha, st.vocab_size, st.case_policy)
        run = Run(out, config=cfg, labels=labels.labels, tokenizer=encoder.tokenizer.config,
                  store_ref=ref, data=DataRecord(**files, columns=columns), opened=st)
    except BaseException:
        st.close()
        raise
    if write:
        run.write_description()
    return run, data


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def _resolve_config(cfg: RunConfig, store: Store) -> RunConfig:
    """Fill what comes from the store: sources (all of them when none were named), dims, size."""
    sources = list(cfg.sources) or list(store.sources)
    if not sources:
        raise StoreError("the store has no sources", path=store.path)
    for name in sources:
        if name not in store.sources:
            raise StoreError(
                f"no source named {name!r}; the store has: {', '.join(store.sources)}",
                path=store.path, hint="check --method single:NAME / --set sources=...",
            )
    if cfg.method == "single" and len(sources) != 1:
        raise ConfigError("method single needs one source: --method single:NAME")
    return replace(
        cfg, sources=sources, source_dims=[store.dim(s) for s in sources],
        vocab_size=store.vocab_size,
    )


def _read_data(paths: dict[str, Path], encoder: TextEncoder, labels: LabelMap | None, *,
               encoding: str, show: bool, columns: Columns,
               cfg: RunConfig, out: Path) -> tuple[LabelMap, Data]:
    """Train, dev and (if given) test, encoded; without ``labels`` they come from train. The
    encoded examples are memory-mapped from files beside the run directory ``out``
    (learn/scratch.py; in memory where none can be written there), so training's memory does
    not grow with the number of examples."""
    from metaprep.learn.scratch import Scratch

    scratch = Scratch.beside(*scratch_folder(out, os.getpid()))
    folder = scratch.folder

    def read(split: str, labels: LabelMap | None) -> tuple[TaskData, LabelMap]:
        if cfg.task == "multilabel":
            return load_labelsets(paths[split], encoder, labels=labels, label_sep=cfg.label_sep,
                                  encoding=encoding, progress=show, columns=columns)
        return load_task(paths[split], encoder, labels=labels, encoding=encoding, progress=show,
                         columns=columns, folder=folder)

    with scratch:
        return _read_splits(read, paths, labels)


def _read_splits(read: Any, paths: dict[str, Path], labels: LabelMap | None
                 ) -> tuple[LabelMap, Data]:
    train_data, labels = read("train", labels)
    dev_data = read("dev", labels)[0]
    test_data = read("test", labels)[0] if "test" in paths else None
    for d in (dev_data, test_data):
        if d is not None and d.pair != train_data.pair:
            raise DataError("pairs here, single sentences in the train file (or the reverse)",
                            path=d.path)
    return labels, (train_data, dev_data, test_data)


# --- a resumed run ------------------------------------------------------------------------------
def _reopen(out: Path, given: dict[str, Any], inputs: dict[str, Any], *, encoding: str,
            show: bool) -> tuple[Run, Data]:
    run = Run.open(out, store=inputs["store"])
    try:
        _check_options(run, given)
        run.store()  # its size and sha256 against store.json, before reading any data
        paths = _data_paths(run, {k: inputs[k] for k in SPLITS})
        # the column names the run was started with
        _, data = _read_data(paths, run.encoder(), LabelMap(run.labels), encoding=encoding,
                             show=show, columns=run.data.columns, cfg=run.config, out=out)
    except BaseException:
        run.close()
        raise
    return run, data


def _non_default(cfg: RunConfig) -> dict[str, Any]:
    """The options of ``cfg`` that differ from the defaults: the ones a caller surely gave (one
    set to its default value cannot be told apart; the CLI passes ``overrides`` instead)."""
    default = RunConfig().to_dict()
    return {k: v for k, v in cfg.to_dict().items() if v != default[k]}


def _check_options(run: Run, given: dict[str, Any]) -> None:
    """Options given to a resume must be the saved ones (sources: empty means all), or the
    ones the run resolved from its train split (a preset's pool_combiner auto, its learned
    source left out below learned_min_tokens)."""
    saved = run.config.to_dict()
    left_out = saved["learned_dim"] == 0 and saved["learned_min_tokens"] > 0
    for key, value in sorted(given.items()):
        if (key not in OPTIONS and key != "teacher") or (key == "sources" and not value):
            continue
        if key not in saved:
            raise ConfigError(f"unknown option {key!r}")
        resolved = ((key == "pool_combiner" and value == "auto")
                    or (left_out and key.startswith("learned_") and saved[key] == 0))
        if value != saved[key] and not resolved:
            raise ConfigError(
                f"{key} is {value!r} here but {saved[key]!r} in the run being resumed",
                path=run.path / CONFIG,
                hint="drop the option to resume the run as it was, or start a new run")


def _data_paths(run: Run, given: dict[str, Any]) -> dict[str, Path]:
    """The files to read: the recorded ones, or the given ones if they are the same bytes.
    Recorded files are re-hashed: a changed one would silently change the run."""
    paths: dict[str, Path] = {}
    for split in SPLITS:
        rec, path = run.data.get(split), given.get(split)
        if path is not None:
            if rec is None:
                raise DataError(f"the run was started without a {split} file", path=path,
                                hint=f"drop --{split} to resume it")
            if FileRef.of(path).sha256 != rec.sha256:
                raise DataError(f"not the {split} file the run was started with", path=path,
                                hint=f"the run used {rec.path}")
            paths[split] = Path(path)
        elif rec is not None:
            p = Path(rec.path)
            if not p.is_file():
                raise DataError(f"the run's {split} file is gone", path=p,
                                hint=f"pass --{split} with its new location")
            if file_sha256(p) != rec.sha256:
                raise DataError("changed since the run started (sha256 differs)", path=p,
                                hint="restore it, or start a new run")
            paths[split] = p
    for split in ("train", "dev"):
        if split not in paths:
            raise ModelError(f"records no {split} file", path=run.path / DATA,
                             hint="the file was edited by hand")
    return paths
