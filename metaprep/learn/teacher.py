"""Distillation: a trained run or ensemble (the teacher) gives its class probabilities on every
training text, and the model in training (the student) learns from them as well as from the
labels:

    loss = (1 - w) * cross_entropy(labels) + w * T^2 * KL(teacher_T || student_T)

where ``_T`` is a distribution softened by temperature T (the teacher's probabilities p become
p^(1/T), renormalised; the student's logits are divided by T) and T^2 keeps the soft term's
gradient on the scale of the hard one (Hinton, Vinyals & Dean 2015). The probabilities of a
teacher say which wrong classes are near misses, which a one-hot label does not; an ensemble
averaged is the usual teacher, and its student keeps one model's serving cost.

The teacher must have been trained on the same store (so a word id means the same word), with
the same labels in the same order and the same tokenizer; it is read as any run is (validated,
never unpickled) and its probabilities are computed once, when the student's training starts,
with the student's own store (whose sha256 the student checked; the teacher's recorded store
path is never read). The teacher is identified by content (``teacher_identity``): recorded in
the student's teacher.json when it starts, and checked again on every resume, so a teacher
retrained or edited in place is refused rather than silently mixed into one run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from metaprep.checksum import file_sha256
from metaprep.errors import ConfigError, ModelError
from metaprep.learn.data import TaskData
from metaprep.learn.rundir import BEST, CONFIG, LABELS, TEACHER_RECORD, TOKENIZER, Run
from metaprep.learn.runfiles import check_run_file

__all__ = ["distill_loss", "teacher_identity", "teacher_probabilities", "teacher_rows",
           "the_teacher"]


def _teacher_dirs(path: str | Path) -> tuple[Path, list[Path]]:
    from metaprep.learn.ensemble import is_ensemble, member_dirs

    root = Path(path)
    if not root.is_dir():
        raise ConfigError("no such teacher: give a trained run or ensemble directory", path=root)
    return root, member_dirs(root) if is_ensemble(root) else [root]


def teacher_identity(path: str | Path) -> str:
    """The sha256 of what the teacher at ``path`` is: of each member (one run: itself) the
    sha256 of its config, labels, tokenizer and best weights, and of the store it was trained
    on. Its path, and the path of its store, are not part of it (either may move)."""
    _, dirs = _teacher_dirs(path)
    h = hashlib.sha256()
    for d in dirs:
        with Run.open(d, verify_store=False) as run:  # the description, validated
            h.update(f"store {run.store_ref.sha256}\n".encode())
        for name in (CONFIG, LABELS, TOKENIZER, BEST):
            check_run_file(d / name)
            if not (d / name).is_file():
                raise ModelError(f"the teacher has no {name}", path=d,
                                 hint="give a trained run or ensemble as the teacher")
            h.update(f"{name} {file_sha256(d / name)}\n".encode())
    return h.hexdigest()


def the_teacher(run: Run, data: TaskData, *, resumed: bool, write: bool,
                progress: bool = False) -> torch.Tensor:
    """The probabilities on ``data`` of the teacher ``run`` names (teacher_probabilities),
    that teacher checked to be the one recorded in ``run``'s teacher.json when the run started
    (``resumed``: it continues from a checkpoint), or recorded there now (``write``: rank 0 of a
    run starting)."""
    path = Path(run.config.teacher)
    identity = teacher_identity(path)
    if resumed:
        recorded = run.teacher_record()
        if recorded is None:
            raise ModelError(f"the run records no teacher to check {path} against",
                             path=run.path / TEACHER_RECORD,
                             hint="start the run again in a new directory")
        if recorded["sha256"] != identity:
            raise ModelError("the teacher changed since the run started: its weights, config, "
                             f"labels or store differ from the ones in {run.path / TEACHER_RECORD}",
                             path=path, hint="restore the teacher the run started with, or "
                             "start a new run")
    probs = teacher_probabilities(path, data, store=run.store_path,
                                  store_sha256=run.store_ref.sha256, labels=run.labels,
                                  tokenizer=run.tokenizer, progress=progress)
    if write and not resumed:
        run.write_teacher({"path": str(path.resolve()), "sha256": identity})
    return probs


def teacher_probabilities(path: str | Path, data: TaskData, *, store: str | Path,
                          store_sha256: str, labels: list[str], tokenizer: Any,
                          progress: bool = False) -> torch.Tensor:
    """(N, C) float32 class probabilities of the teacher at ``path`` (a run or an ensemble
    directory) on ``data``, in file order; checked against the student's store, labels and
    tokenizer. ``store``: the student's store, whose sha256 is ``store_sha256``: the teacher's
    tables are read from it, never from the store path the teacher recorded (which may hold
    another store by now)."""
    from metaprep.learn.ensemble import Ensemble, load_members
    from metaprep.learn.evaluate import model_logits

    root, dirs = _teacher_dirs(path)
    with Run.open(dirs[0], store=store, verify_store=False) as first:  # checked before loading
        if first.config.task != "single":
            raise ModelError("the teacher is a multi-label run: distillation takes a "
                             "single-label teacher", path=root)
        # "": the store was not hashed here (a DDP rank other than 0, which checks it)
        if store_sha256 and first.store_ref.sha256 != store_sha256:
            raise ModelError("the teacher was trained on another store (its word ids would "
                             "mean other words)", path=root,
                             hint="train the teacher on the same store, or drop --teacher")
        if first.labels != labels:
            raise ModelError("the teacher's labels differ from the training data's",
                             path=root, hint="train the teacher on the same data")
        if first.tokenizer != tokenizer:
            raise ModelError("the teacher splits text into tokens another way", path=root,
                             hint="train the teacher with the same tokenizer options")
        if first.config.pair != data.pair:  # one sentence of a pair would be scored alone
            want = "sentence pairs" if data.pair else "single sentences"
            raise ModelError(f"the teacher was not trained on {want}, as this run is",
                             path=root, hint="train the teacher on the same data")
    # the other members are checked against the first (config but the seed, labels, store)
    runs, models = load_members(dirs, store=store, verify_store=False, progress=progress)
    try:
        teacher = models[0] if len(models) == 1 else Ensemble(models)
        # the log of the probabilities (one model: its logits); a softmax gives them back
        logits = torch.from_numpy(model_logits(teacher, data, 256, "cpu", run=root))
        return logits.float().softmax(-1)
    finally:
        for run in runs:
            run.close()


def distill_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor, *,
                 weight: float, temperature: float) -> torch.Tensor:
    """The mix of the hard and the soft loss (module docstring); ``teacher``: (B, C)
    probabilities."""
    hard = F.cross_entropy(logits, labels)
    soft_target = (teacher.clamp_min(torch.finfo(teacher.dtype).tiny).log()
                   / temperature).log_softmax(-1)
    soft = F.kl_div((logits / temperature).log_softmax(-1), soft_target, log_target=True,
                    reduction="batchmean") * temperature ** 2
    return (1.0 - weight) * hard + weight * soft


def teacher_rows(teacher: torch.Tensor, index: np.ndarray) -> torch.Tensor:
    """The teacher's probabilities of the examples of one batch."""
    return teacher[torch.from_numpy(np.asarray(index, dtype=np.int64))]
