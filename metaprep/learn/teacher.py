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
never unpickled) and its probabilities are computed once, when the student's training starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from metaprep.errors import ConfigError, ModelError
from metaprep.learn.data import TaskData

__all__ = ["distill_loss", "teacher_probabilities", "teacher_rows"]


def teacher_probabilities(path: str | Path, data: TaskData, *, store_sha256: str,
                          labels: list[str], tokenizer: Any, progress: bool = False
                          ) -> torch.Tensor:
    """(N, C) float32 class probabilities of the teacher at ``path`` (a run or an ensemble
    directory) on ``data``, in file order; checked against the student's store, labels and
    tokenizer."""
    from metaprep.learn.ensemble import Ensemble, is_ensemble, load_members, member_dirs
    from metaprep.learn.evaluate import _logits

    root = Path(path)
    if not root.is_dir():
        raise ConfigError("no such teacher: give a trained run or ensemble directory", path=root)
    dirs = member_dirs(root) if is_ensemble(root) else [root]
    runs, models = load_members(dirs, verify_store=False, progress=progress)
    try:
        first = runs[0]
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
        teacher = models[0] if len(models) == 1 else Ensemble(models)
        # the log of the probabilities (one model: its logits); a softmax gives them back
        logits = torch.from_numpy(_logits(teacher, data, 256, "cpu"))
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
