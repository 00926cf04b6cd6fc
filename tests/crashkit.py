"""A training run stopped after N optimizer steps, as a kill would stop it: the resume tests'
crash, made from outside the training loop by wrapping its per-step hook
(``metaprep.learn.train.after_step``, which writes the mid-epoch checkpoints)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from metaprep.learn import train as learn_train


class SimulatedCrash(RuntimeError):
    """What ``crash_after`` raises in place of a kill."""


@contextmanager
def crash_after(steps: int) -> Iterator[None]:
    """Within the block, a run raises SimulatedCrash once it has made ``steps`` optimizer steps
    (after that step's checkpoint, when one was due): in a plain run, an ensemble member or a
    teacher, through the library, the stages or the CLI alike."""
    original = learn_train.after_step

    def after_step(loop: Any, **kw: Any) -> None:
        original(loop, **kw)
        if loop.state["step"] >= steps:
            raise SimulatedCrash(f"stopped after {steps} optimizer steps")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(learn_train, "after_step", after_step)
        yield
