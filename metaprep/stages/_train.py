"""The train stage: an aligned store + labelled data -> a trained run directory."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaprep.distributed import world
from metaprep.errors import ConfigError
from metaprep.learn.pace import RunPace
from metaprep.learn.rundir import MEMBERS, TEACHER
from metaprep.outputs import claim_outputs
from metaprep.stages._common import (
    PathLike,
    TaskColumns,
    input_field,
    output_field,
    required,
    resolve_task,
)
from metaprep.taskdata import task_columns

__all__ = ["TEACHER", "TrainOptions", "TrainResult", "train"]


@dataclass(frozen=True)
class TrainOptions(TaskColumns):
    """The inputs and the control of one training run; the training options themselves (sizes,
    lr, epochs, ...) are ``config``, keyed as RunConfig declares them (learn/config.py): those
    not given take the preset's values, else RunConfig's defaults; on ``resume``, the run's
    saved ones, and a value given that differs from the saved one is an error."""

    store: PathLike | None = input_field()  # the aligned store (on resume: the run's, by default)
    train: PathLike | None = input_field()  # training data (on resume: the run's)
    dev: PathLike | None = input_field()  # dev data: lr decay, early stopping, best epoch
    test: PathLike | None = input_field()  # scored with the best weights at the end
    output: PathLike | None = output_field()  # the run directory [artifacts/runs/<time>-<method>]
    preset: str | None = None  # fast | accurate: a measured recipe; ``config`` wins over it
    config: Mapping[str, Any] = field(default_factory=dict)  # {"proj_dim": 64, ...}
    teacher: PathLike | None = input_field()  # a trained run or ensemble to learn from as well
    resume: bool = False  # continue the run in ``output`` from its last checkpoint
    keep_checkpoints: bool = False  # keep a finished run's checkpoints (optimizer state)
    plots: bool = False  # draw learning_curves.png and attention_by_source.png (matplotlib)
    data_encoding: str = "utf-8"  # of the data files
    threads: int | None = None  # torch CPU threads [torch's choice]
    quiet: bool = False  # no progress bars

    def __post_init__(self) -> None:
        # every option checked now, by RunConfig's own declaration: before anything is written,
        # and when a pipeline file is loaded (a resume also compares them with the saved ones)
        from metaprep.learn.config import check_option, preset_values

        checked = {}
        for key, value in dict(self.config).items():
            if key == "method" and isinstance(value, str) and ":" in value:  # single:NAME
                _method(value, ())
                checked[key] = value
                continue
            checked[key] = check_option(key, value, where=f"config key {key!r}:")
        object.__setattr__(self, "config", checked)
        preset_values(self.preset)  # an unknown preset is refused now
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ConfigError(f"threads must be from 1 to 1,024, not {self.threads}")

    @classmethod
    def takes(cls, key: str) -> bool:
        """Whether ``key`` is a training option (a pipeline's [train] key that goes into
        ``config``)."""
        from metaprep.learn.config import OPTIONS

        return key in OPTIONS

    def given(self) -> dict[str, Any]:
        """The training options set explicitly, as the run config holds them."""
        given = {k: v for k, v in self.config.items() if k not in ("method", "sources")}
        if self.teacher is not None:  # the absolute path: a resume finds it again
            given["teacher"] = str(Path(self.teacher).resolve())
        return given


@dataclass(frozen=True)
class TrainResult:
    run: Path
    metrics: dict[str, Any]  # what metrics.json holds: epochs, best epoch, dev and test scores
    notes: list[str] = field(default_factory=list)  # e.g. the task detected from the data

    @property
    def dev_accuracy(self) -> float:
        return float(self.metrics["dev"]["accuracy"])

    @property
    def test_accuracy(self) -> float | None:
        test = self.metrics.get("test")
        return None if not test else float(test["accuracy"])


def _method(method: str | None, sources: tuple[str, ...]) -> tuple[str | None, list[str]]:
    """``single:NAME`` -> ("single", [NAME]), checked against ``sources``."""
    chosen = [s.strip() for s in sources if s.strip()]
    if method is None:
        return None, chosen
    name, _, single = method.partition(":")
    if name == "single":
        if single and chosen and chosen != [single]:
            raise ConfigError(f"method {method} and sources {','.join(chosen)} disagree")
        chosen = [single] if single else chosen
        if len(chosen) != 1:
            raise ConfigError("method single needs one source: --method single:NAME")
    elif single:
        raise ConfigError(f"--method {method}: only single takes a :NAME")
    return name, chosen


def train(options: TrainOptions) -> TrainResult:
    """An aligned store + labelled data -> a trained run directory (see docs/model.md)."""
    import torch

    from metaprep.learn.config import RunConfig, preset_values
    from metaprep.learn.ensemble import is_ensemble
    from metaprep.learn.rundir import CONFIG
    from metaprep.learn.train import default_run_dir
    from metaprep.learn.train import train as train_run

    o = options
    if o.threads is not None:
        torch.set_num_threads(o.threads)
    preset = preset_values(o.preset)
    preset_method = preset.pop("method", None)
    method, chosen = _method(o.config.get("method") or preset_method,
                             tuple(o.config.get("sources", ())))
    if not o.resume:
        for name in ("store", "train", "dev"):
            required(getattr(o, name), name, "train")
    given = {**preset, **o.given()}  # explicit options win; a resume checks these
    if o.teacher is not None:
        found = Path(o.teacher)
        if not ((found / CONFIG).is_file() or is_ensemble(found)):
            raise ConfigError("no such teacher: give a trained run or ensemble directory",
                              path=found)
        if o.config.get("teacher_members"):
            raise ConfigError("--teacher and --teacher-members both name a teacher",
                              hint="give a trained teacher, or the size of one to train")
    notes = []
    if not o.resume:
        task, why = resolve_task(o.config.get("task"), required(o.train, "train", "train"),
                                 label_sep=o.config.get("label_sep", ","),
                                 encoding=o.data_encoding, columns=task_columns(o))
        given["task"] = task
        if why:
            notes.append(why)
            if not o.quiet:
                print(f"note: {why}", file=sys.stderr)
    cfg = RunConfig(method=method or RunConfig.method, sources=chosen,
                    source_dims=[0] * len(chosen), **given)
    if method is not None:
        given["method"] = method
    if chosen:
        given["sources"] = chosen
    out = Path(o.output) if o.output is not None else None
    if (cfg.teacher_members and not o.resume) or (o.resume and out is not None
                                                  and _taught(out)):
        if world().distributed:
            raise ConfigError("a run that trains its own teacher trains it one member after "
                              "another in one process", hint="run it without torchrun, or "
                              "train the teacher first and give it with --teacher")
        out = out or default_run_dir(cfg.method)
        _check_new_or_own(out, o.resume)
        if not o.resume and (out / TEACHER).exists():
            raise ConfigError("already holds a teacher", path=out / TEACHER,
                              hint="continue the run with --resume, or choose another -o")
        with claim_outputs("train", o, {"output": out}, folders=True):
            metrics = _train_taught(None if o.resume else cfg, o, out, given)
        return TrainResult(out, metrics, notes)
    if (cfg.members > 1 and not o.resume) or (o.resume and out is not None and is_ensemble(out)):
        if world().distributed:
            raise ConfigError("an ensemble trains its members one after another in one "
                              "process", hint="run it without torchrun")
        out = out or default_run_dir(cfg.method)
        with claim_outputs("train", o, {"output": out}, folders=True):
            metrics = _train_members(None if o.resume else cfg, o, out, given)
        return TrainResult(out, metrics, notes)
    if out is not None:
        _check_new_or_own(out, o.resume)
    with claim_outputs("train", o, {"output": out}, folders=True):
        metrics = train_run(cfg, store=o.store, train_data=o.train, dev=o.dev, test=o.test,
                            out=out, resume=o.resume, progress=not o.quiet,
                            encoding=o.data_encoding, overrides=given,
                            columns=task_columns(o), keep_checkpoint=o.keep_checkpoints,
                            plots=o.plots)
    return TrainResult(Path(metrics["run_dir"]), metrics, notes)


def _check_new_or_own(out: Path, resume: bool) -> None:
    from metaprep.learn.rundir import partly_described, run_state

    if resume or not out.is_dir() or run_state(out) != "empty" or not any(out.iterdir()):
        return
    if partly_described(out):  # killed (or out of disk) while describing itself: start over
        return
    raise ConfigError("is a folder that holds other files, not a run: train writes a run "
                      "only into a new or empty folder, or its own run", path=out,
                      hint="choose another -o, or continue a killed run there with --resume")


def _taught(out: Path) -> bool:
    """Whether ``out`` holds a run that trains its own teacher (its config says so)."""
    from metaprep.learn.rundir import CONFIG, Run

    if not (out / CONFIG).is_file():
        return False
    with Run.open(out, verify_store=False) as run:
        return bool(run.config.teacher_members)


def _train_taught(cfg: Any, o: TrainOptions, out: Path, given: dict[str, Any]
                  ) -> dict[str, Any]:
    """A run taught by an ensemble it trains first (``teacher_members``). The run is described
    first (its config, data and store records, so that a resume knows it), then the ensemble
    is trained into ``out``/teacher with the run's config but members and the teacher's own
    options (so it is the ensemble ``members`` = ``teacher_members`` gives, bit for bit), then
    the run itself. A resume finishes whichever is unfinished."""
    from dataclasses import replace

    from metaprep.learn.config import RunConfig
    from metaprep.learn.ensemble import check_subfolder, is_ensemble
    from metaprep.learn.prepare import prepare
    from metaprep.learn.rundir import Run
    from metaprep.learn.train import train as train_run

    teacher = out / TEACHER
    check_subfolder(teacher)  # never a link: it would be read, and trained into, elsewhere
    if cfg is not None:
        inputs = {k: getattr(o, k) for k in ("store", "train", "dev", "test")}
        cfg = replace(cfg, teacher=str(teacher.resolve()))
        prepare(cfg, out, inputs, resume=False, overrides=None, write=True,
                encoding=o.data_encoding, show=not o.quiet, columns=task_columns(o)).run.close()
    with Run.open(out, verify_store=False) as run:
        saved = run.config
        recorded = {"store": str(run.store_ref.path), **{
            k: None if (ref := run.data.get(k)) is None else str(ref.path)
            for k in ("train", "dev", "test")}}
    if not o.quiet:
        print(f"the teacher first: an ensemble of {saved.teacher_members} models in {teacher}, "
              "then the model taught by it (--teacher-members 0: no teacher)", file=sys.stderr)
    # the whole run: the teacher's members, then the model
    pace = RunPace(total=saved.teacher_members + 1,
                   labels=dict.fromkeys(range(saved.teacher_members), "teacher"))
    if is_ensemble(teacher):
        _train_members(None, o, teacher, {}, inputs=recorded, pace=pace)
    else:
        _train_members(replace(saved, members=saved.teacher_members, teacher_members=0,
                               teacher="", teacher_weight=RunConfig.teacher_weight,
                               teacher_temperature=RunConfig.teacher_temperature),
                       o, teacher, {}, inputs=recorded, pace=pace)
    if not o.quiet:
        print(f"the model, taught by the ensemble in {teacher}: {out}", file=sys.stderr)
    return train_run(None, out=out, resume=True, progress=not o.quiet,
                     encoding=o.data_encoding, overrides=given, columns=task_columns(o),
                     keep_checkpoint=o.keep_checkpoints, plots=o.plots, pace=pace)


def _train_members(cfg: Any, o: TrainOptions, out: Path, given: dict[str, Any], *,
                   inputs: dict[str, Any] | None = None, pace: RunPace | None = None
                   ) -> dict[str, Any]:
    """An ensemble (learn/ensemble.py): its members trained, or resumed, one after another."""
    pace = pace or RunPace()
    from metaprep.learn.data import LabelMap, load_task
    from metaprep.learn.ensemble import train_ensemble
    from metaprep.learn.evaluate import ensemble_scores
    from metaprep.learn.rundir import Run, run_state
    from metaprep.learn.train import train as train_run

    def one(member: Any, where: Path, inputs: dict[str, Any]) -> dict[str, Any]:
        if member is None and run_state(where) == "weights-only":  # finished, no checkpoint
            with Run.open(where, verify_store=False) as run:
                done = run.metrics
            if done is not None:
                pace.end_model(trained=False)
                return done
        return train_run(member, store=inputs["store"], train_data=inputs["train"],
                         dev=inputs["dev"], test=inputs["test"], out=where, resume=member is None,
                         progress=not o.quiet, encoding=o.data_encoding,
                         overrides={} if member is None else None, columns=task_columns(o),
                         keep_checkpoint=o.keep_checkpoints, plots=o.plots,
                         pace=pace)

    def score(dirs: list[Path]) -> dict[str, Any]:
        """The members' averaged probabilities on the dev and test files they recorded."""
        found = {}
        with Run.open(dirs[0]) as run:  # the store checked: the members read their tables there
            for name in ("dev", "test"):
                ref = run.data.get(name)
                found[name] = None if ref is None else load_task(
                    ref.path, run.encoder(), labels=LabelMap(run.labels),
                    encoding=o.data_encoding, progress=not o.quiet, columns=run.data.columns)[0]
        return ensemble_scores(dirs, found, progress=not o.quiet)

    def check(member: Any, inputs: dict[str, Any]) -> None:
        """Member 0's inputs read and checked as its training would, writing nothing: a bad
        store, source or data file is refused before the ensemble's folder is made."""
        from metaprep.learn.prepare import prepare

        prepare(member, out / MEMBERS / "0", inputs, resume=False, overrides=None,
                write=False, encoding=o.data_encoding, show=False,
                columns=task_columns(o)).run.close()

    if inputs is None:
        inputs = {k: getattr(o, k) for k in ("store", "train", "dev", "test")}
    resumed = {k: v for k, v in given.items() if k not in ("task", "label_sep")}
    return train_ensemble(cfg, out, inputs=inputs, overrides=resumed if cfg is None else {},
                          train_one=one, score=score, progress=not o.quiet, check=check,
                          pace=pace)
