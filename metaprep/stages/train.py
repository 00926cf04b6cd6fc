"""The train stage: an aligned store + labelled data -> a trained run directory."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from metaprep.errors import ConfigError
from metaprep.learn.config import LIMITS as RUN_LIMITS
from metaprep.learn.config import number_problem
from metaprep.learn.rundir import MEMBERS, TEACHER
from metaprep.outputs import claim_outputs
from metaprep.stages._common import PathLike, TaskColumns, _in, _out, _req, _resolve_task
from metaprep.taskdata import task_columns

__all__ = ["HYPER", "TEACHER", "TrainOptions", "TrainResult", "train"]


# Hyper-parameters left at None take the run config's defaults (metaprep.learn.config.RunConfig);
# on --resume, the run's saved config, and a value given that differs from it is an error.
HYPER = ("proj_dim", "gating", "context_hidden", "mask_missing", "use_derived", "mix_relu",
         "mix_dropout", "source_norm", "word_features", "source_dropout", "mix_entropy",
         "encoder", "hidden", "cnn_filters", "cnn_widths", "mlp_hidden", "lr", "lr_decay",
         "min_lr", "patience", "epochs", "batch_size", "grad_clip", "seed", "checkpoint_steps",
         "pos_weight", "select_metric", "learned_dim", "learned_buckets", "learned_subwords",
         "learned_init", "learned_dropout", "learned_weight_decay", "learned_lr_scale", "members",
         "teacher", "teacher_members", "teacher_weight", "teacher_temperature", "max_tokens")


@dataclass(frozen=True)
class TrainOptions(TaskColumns):
    # upper bounds of the sizes (RunConfig's), checked by a pipeline when its file is loaded
    BOUNDS: ClassVar[dict[str, int]] = RUN_LIMITS
    store: PathLike | None = _in()  # the aligned store (on resume: the run's, by default)
    train: PathLike | None = _in()  # training data (on resume: the run's)
    dev: PathLike | None = _in()  # dev data: lr decay, early stopping, best epoch
    test: PathLike | None = _in()  # scored with the best weights at the end
    output: PathLike | None = _out()  # the run directory [artifacts/runs/<time>-<method>]
    method: str | None = None  # dme | cdme | concat | sum | single:NAME [dme]
    sources: tuple[str, ...] = ()  # store sources to use [all]
    proj_dim: int | None = None  # size d' of the projected embeddings [256]
    gating: str | None = None  # softmax over sources, or a sigmoid gate per source [softmax]
    context_hidden: int | None = None  # CDME scorer BiLSTM units per direction [2]
    mask_missing: bool | None = None  # sources without a word get weight 0 [true]
    use_derived: bool | None = None  # subword/map OOV rows count as present [true]
    mix_relu: bool | None = None  # ReLU after the mix [false]
    mix_dropout: float | None = None  # dropout on the meta-embeddings [0]
    source_norm: str | None = None  # none | center | scale | layernorm per source [layernorm]
    word_features: bool | None = None  # word features into the dme/cdme scorer [false]
    source_dropout: float | None = None  # drop whole sources per token in training [0]
    mix_entropy: float | None = None  # loss weight of the mixing weights' entropy [0]
    encoder: str | None = None  # bilstm (BiLSTM-max) | pool (max+mean) | cnn [bilstm]
    hidden: int | None = None  # encoder BiLSTM units per direction [512]
    cnn_filters: int | None = None  # cnn encoder: filters per width [64]
    cnn_widths: tuple[int, ...] | None = None  # cnn encoder: filter widths in tokens [1,2,3]
    mlp_hidden: int | None = None  # classifier hidden units [512]
    max_tokens: int | None = None  # tokens kept of each text, here and when served [512]
    learned_dim: int | None = None  # the learned source's size; 0: no learned source [0]
    learned_buckets: int | None = None  # hashed word-bigram rows of the learned source [0]
    learned_subwords: int | None = None  # hashed character n-gram rows of the learned source [0]
    learned_init: str | None = None  # store source whose rows start the learned ones [random]
    learned_dropout: float | None = None  # dropout on the learned vectors [0]
    learned_weight_decay: float | None = None  # AdamW decay of the learned tables [0]
    learned_lr_scale: float | None = None  # the learned tables' lr is lr x this [1.0]
    preset: str | None = None  # fast | accurate: a measured recipe; options given here win
    lr: float | None = None  # Adam learning rate [4e-4]
    lr_decay: float | None = None  # lr factor when dev accuracy does not improve [0.2]
    min_lr: float | None = None  # stop once the lr falls below this [1e-5]
    patience: int | None = None  # epochs without dev improvement before stopping [3]
    epochs: int | None = None  # [10]
    batch_size: int | None = None  # [64]
    grad_clip: float | None = None  # max gradient norm [5.0]
    seed: int | None = None  # weights, batch order and dropout: reruns are bit-identical [0]
    checkpoint_steps: int | None = None  # also checkpoint every N steps (0: epoch ends) [0]
    members: int | None = None  # an ensemble of this many models (seeds seed + 1000 k) [1]
    teacher: PathLike | None = _in()  # a trained run or ensemble to learn from as well [none]
    teacher_members: int | None = None  # no --teacher: train an ensemble of N first as one [0]
    teacher_weight: float | None = None  # the teacher's share of the loss [0.5]
    teacher_temperature: float | None = None  # softens teacher and student alike [1.0]
    pos_weight: float | None = None  # multilabel: cap of the rare labels' positive weight [0: off]
    select_metric: str | None = None  # multilabel: micro_f1 | macro_f1 | mean_auc [micro_f1]
    task: str | None = None  # single | multilabel [detected from the train file]
    label_sep: str | None = None  # multilabel TSV/CSV: the separator inside the label column [,]
    resume: bool = False  # continue the run in ``output`` from its last checkpoint
    data_encoding: str = "utf-8"  # of the data files
    threads: int | None = None  # torch CPU threads [torch's choice]
    quiet: bool = False  # no progress bars

    def __post_init__(self) -> None:
        # every number checked now, by the run config's own rule: before anything is written,
        # and when a pipeline file is loaded (a resume also compares them with the saved ones)
        for key in HYPER:
            why = number_problem(key, getattr(self, key))
            if why:
                raise ConfigError(f"config key {key!r}: {why}")
        if self.threads is not None and not 1 <= self.threads <= 1024:
            raise ConfigError(f"threads must be from 1 to 1,024, not {self.threads}")

    def given(self) -> dict[str, Any]:
        """The hyper-parameters set explicitly (not None)."""
        given = {k: getattr(self, k) for k in HYPER if getattr(self, k) is not None}
        if "cnn_widths" in given:  # the run config holds a list (as config.json does)
            given["cnn_widths"] = list(given["cnn_widths"])
        if "teacher" in given:  # the run config holds the absolute path (a resume finds it)
            given["teacher"] = str(Path(given["teacher"]).resolve())
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
    method, chosen = _method(o.method or preset_method, o.sources)
    if not o.resume:
        for name in ("store", "train", "dev"):
            _req(getattr(o, name), name, "train")
    given = {**preset, **o.given()}  # explicit options win; a resume checks these
    if o.teacher is not None:
        found = Path(o.teacher)
        if not ((found / CONFIG).is_file() or is_ensemble(found)):
            raise ConfigError("no such teacher: give a trained run or ensemble directory",
                              path=found)
        if o.teacher_members:
            raise ConfigError("--teacher and --teacher-members both name a teacher",
                              hint="give a trained teacher, or the size of one to train")
        given.pop("teacher_members", None)  # a teacher given: none to train (the preset's)
    if (o.members or 1) > 1 and o.teacher_members is None:
        given.pop("teacher_members", None)  # an ensemble of the preset's models, untaught
    given.update({k: v for k in ("task", "label_sep") if (v := getattr(o, k)) is not None})
    notes = []
    if not o.resume:
        task, why = _resolve_task(o.task, _req(o.train, "train", "train"),
                                 label_sep=o.label_sep or ",", encoding=o.data_encoding,
                                 columns=task_columns(o))
        given["task"] = task
        if why:
            notes.append(why)
            if not o.quiet:
                print(f"note: {why}", file=sys.stderr)
        if task == "multilabel" and "teacher_members" in preset and o.teacher_members is None:
            given.pop("teacher_members", None)  # a teacher is for single-label tasks
            notes.append(f"the {o.preset} preset's teacher is for single-label tasks: this "
                         "multi-label run trains without one")
            if not o.quiet:
                print(f"note: {notes[-1]}", file=sys.stderr)
    cfg = RunConfig(method=method or RunConfig.method, sources=chosen,
                    source_dims=[0] * len(chosen), **given)
    if method is not None:
        given["method"] = method
    if chosen:
        given["sources"] = chosen
    out = Path(o.output) if o.output is not None else None
    if (cfg.teacher_members and not o.resume) or (o.resume and out is not None
                                                  and _taught(out)):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
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
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("an ensemble trains its members one after another in one "
                              "process", hint="run it without torchrun")
        out = out or default_run_dir(cfg.method)
        with claim_outputs("train", o, {"output": out}, folders=True):
            metrics = _train_members(None if o.resume else cfg, o, out, given)
        return TrainResult(out, metrics, notes)
    if out is not None:
        _check_new_or_own(out, o.resume)
    with claim_outputs("train", o, {"output": out}, folders=True):
        metrics = train_run(cfg, store=o.store, train=o.train, dev=o.dev, test=o.test,
                            out=out, resume=o.resume, progress=not o.quiet,
                            encoding=o.data_encoding, overrides=given,
                            columns=task_columns(o))
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
    if is_ensemble(teacher):
        _train_members(None, o, teacher, {}, inputs=recorded)
    else:
        _train_members(replace(saved, members=saved.teacher_members, teacher_members=0,
                               teacher="", teacher_weight=RunConfig.teacher_weight,
                               teacher_temperature=RunConfig.teacher_temperature),
                       o, teacher, {}, inputs=recorded)
    if not o.quiet:
        print(f"the model, taught by the ensemble in {teacher}: {out}", file=sys.stderr)
    return train_run(None, out=out, resume=True, progress=not o.quiet,
                     encoding=o.data_encoding, overrides=given, columns=task_columns(o))


def _train_members(cfg: Any, o: TrainOptions, out: Path, given: dict[str, Any], *,
                   inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ensemble (learn/ensemble.py): its members trained, or resumed, one after another."""
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
                return done
        return train_run(member, store=inputs["store"], train=inputs["train"],
                         dev=inputs["dev"], test=inputs["test"], out=where, resume=member is None,
                         progress=not o.quiet, encoding=o.data_encoding,
                         overrides={} if member is None else None, columns=task_columns(o))

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
                          train_one=one, score=score, progress=not o.quiet, check=check)
